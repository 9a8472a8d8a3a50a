"""infra/deployer.yaml grants what deploying the packaged stacks takes, and no more.

CloudFormation publishes, per resource type, the permissions its create/read/update/delete
handlers may use (cfn-lint ships them in its schemas). For every resource type the packaged
stacks contain, each of those permissions is either granted to StackRole or listed in UNUSED
with the reason the stacks never need it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cfnlint
import pytest
import yaml

from tests.infra.iam import ROOT, as_list

DEPLOYER = ROOT / "infra" / "deployer.yaml"
SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"

NO_CMK = "no customer managed KMS key: AWS managed keys admit the account's principals through the service"
UNUSED = {
    **dict.fromkeys(["dynamodb:DescribeImport", "dynamodb:ImportTable"], "no ImportSourceSpecification"),
    "dynamodb:UpdateContributorInsights": "no ContributorInsightsSpecification",
    **dict.fromkeys(
        [
            "dynamodb:EnableKinesisStreamingDestination",
            "dynamodb:DisableKinesisStreamingDestination",
            "dynamodb:UpdateKinesisStreamingDestination",
            "kinesis:DescribeStream",
            "kinesis:PutRecords",
        ],
        "no KinesisStreamSpecification",
    ),
    **dict.fromkeys(["dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy"], "no ResourcePolicy"),
    **dict.fromkeys(
        ["dynamodb:CreateTableReplica", "dynamodb:AssociateTableReplica", "iam:CreateServiceLinkedRole"],
        "not a global table, no auto scaling",
    ),
    **dict.fromkeys(
        [
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
            "s3:GetObjectMetadata",
            "s3:ListBucket",
            "logs:CreateLogStream",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
        ],
        "imports and replicas only: the stack writes no items",
    ),
    **dict.fromkeys(
        [
            "kms:CreateGrant",
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:Encrypt",
            "kms:GenerateDataKey",
            "kms:ListAliases",
            "kms:RevokeGrant",
        ],
        NO_CMK,
    ),
    **dict.fromkeys(
        ["secretsmanager:ReplicateSecretToRegions", "secretsmanager:RemoveRegionsFromReplication"],
        "no ReplicaRegions",
    ),
    **dict.fromkeys(
        [
            "logs:AssociateKmsKey",
            "logs:DisassociateKmsKey",
            "logs:PutDataProtectionPolicy",
            "logs:DeleteDataProtectionPolicy",
            "logs:CreateLogDelivery",
            "s3:REST.PUT.OBJECT",
            "firehose:TagDeliveryStream",
            "logs:PutResourcePolicy",
            "logs:DeleteResourcePolicy",
            "logs:PutIndexPolicy",
            "logs:DeleteIndexPolicy",
            "logs:PutBearerTokenAuthentication",
            "logs:PutLogGroupDeletionProtection",
        ],
        "the log groups set a name and a retention only",
    ),
    **dict.fromkeys(
        [
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSubnets",
            "ec2:DescribeVpcs",
        ],
        "no VpcConfig",
    ),
    **dict.fromkeys(
        ["elasticfilesystem:DescribeMountTargets", "s3files:ListMountTargets"], "no FileSystemConfigs"
    ),
    **dict.fromkeys(
        [
            "lambda:GetCodeSigningConfig",
            "lambda:PutFunctionCodeSigningConfig",
            "lambda:DeleteFunctionCodeSigningConfig",
        ],
        "no CodeSigningConfigArn",
    ),
    "lambda:GetLayerVersion": "no Layers",
    "lambda:PutRuntimeManagementConfig": "no RuntimeManagementConfig",
    "lambda:PutFunctionRecursionConfig": "no RecursiveLoop",
    **dict.fromkeys(
        ["lambda:PutFunctionScalingConfig", "lambda:PassCapacityProvider", "lambda:AssociateRuntimeAlias"],
        "no CapacityProviderConfig",
    ),
    "lambda:PublishVersion": "no AutoPublishAlias: the stacks publish no versions",
    "apigateway:UpdateRestApiPolicy": "no Policy on the REST API",
    **dict.fromkeys(
        ["iam:AttachRolePolicy", "iam:DetachRolePolicy"], "chalice's roles have inline policies only"
    ),
    **dict.fromkeys(
        ["iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary"], "no PermissionsBoundary"
    ),
}

# The resource types CloudFormation creates from the SAM ones (AWS::Serverless-2016-10-31).
SAM_RESOURCES = {
    "AWS::Serverless::Function": ["AWS::Lambda::Function"],
    "AWS::Serverless::Api": [
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Stage",
    ],
}
SAM_EVENTS = {
    "SQS": ["AWS::Lambda::EventSourceMapping"],
    "Schedule": ["AWS::Events::Rule", "AWS::Lambda::Permission"],
}
# What `aws cloudformation package` and `deploy` call (awscli customizations/cloudformation, s3uploader).
CLI_ACTIONS = {
    "cloudformation:DescribeStacks",
    "cloudformation:GetTemplateSummary",
    "cloudformation:CreateChangeSet",
    "cloudformation:DescribeChangeSet",
    "cloudformation:ExecuteChangeSet",
    "s3:GetObject",
    "s3:PutObject",
    "iam:PassRole",
}
# The only statements allowed on every resource: these actions have no resource-level permission.
WITHOUT_RESOURCE_LEVEL = {"secretsmanager:GetRandomPassword", "logs:DescribeResourcePolicies"}
# Statements whose resources cannot carry the project's name, and why.
UNNAMED_RESOURCES = {
    "ListLogGroups": "DescribeLogGroups is authorized on the account's log-group:* only",
    "QueueTriggers": "event source mappings are named by UUID: scoped by lambda:FunctionArn instead",
    "ReadQueueTriggers": "event source mappings are named by UUID; reading and tagging them changes nothing",
    "RestApi": "REST APIs are named by generated ID: API Gateway authorizes on the region's /restapis paths",
}


@pytest.fixture(scope="module")
def deployer() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DEPLOYER.read_text())
    return loaded


def role_statements(deployer: dict[str, Any]) -> list[dict[str, Any]]:
    role = deployer["Resources"]["StackRole"]["Properties"]
    return [s for p in role["Policies"] for s in as_list(p["PolicyDocument"]["Statement"])]


def deployer_statements(deployer: dict[str, Any]) -> list[dict[str, Any]]:
    return as_list(deployer["Resources"]["DeployerPolicy"]["Properties"]["PolicyDocument"]["Statement"])


def deployed_types(template: dict[str, Any]) -> Iterator[str]:
    for rid, res in template["Resources"].items():
        kind = res["Type"]
        if not kind.startswith("AWS::Serverless::"):
            yield kind
            continue
        assert kind in SAM_RESOURCES, f"{rid}: teach this test what {kind} becomes"
        yield from SAM_RESOURCES[kind]
        for name, event in res["Properties"].get("Events", {}).items():
            assert event["Type"] in SAM_EVENTS, (
                f"{rid}.{name}: teach this test what a {event['Type']} event becomes"
            )
            yield from SAM_EVENTS[event["Type"]]


def handler_permissions(kind: str) -> set[str]:
    providers = json.loads((SCHEMAS / "providers" / "us-east-1.json").read_text())
    schema = json.loads((SCHEMAS / "resources" / f"{providers[kind]}.json").read_text())
    # Stack operations use these handlers; "list" serves resource discovery (IaC generator), not stacks.
    handlers = [schema["handlers"].get(h, {}) for h in ("create", "read", "update", "delete")]
    return {p for handler in handlers for p in handler.get("permissions", [])}


def test_stack_role_covers_what_cloudformation_needs_for_every_resource(
    built: dict[str, Path], deployer: dict[str, Any]
) -> None:
    granted = {a for s in role_statements(deployer) if s["Effect"] == "Allow" for a in as_list(s["Action"])}
    kinds = {k for path in built.values() for k in deployed_types(json.loads(path.read_text()))}
    missing = {
        f"{kind}: {p}"
        for kind in kinds
        for p in handler_permissions(kind)
        if p not in granted and p not in UNUSED
    }
    assert not missing, "grant these to StackRole in infra/deployer.yaml, or say in UNUSED why not:\n  " + (
        "\n  ".join(sorted(missing))
    )


def test_stack_role_grants_nothing_cloudformation_does_not_use(
    built: dict[str, Path], deployer: dict[str, Any]
) -> None:
    kinds = {k for path in built.values() for k in deployed_types(json.loads(path.read_text()))}
    needed = {p for kind in kinds for p in handler_permissions(kind)} | {
        "lambda:GetPolicy",
        "lambda:ListTags",
    }
    granted = {a for s in role_statements(deployer) for a in as_list(s["Action"])}
    assert not granted - needed
    assert not set(UNUSED) & granted, "a permission is both granted and listed as unused"


def test_stack_role_is_scoped_to_the_project(deployer: dict[str, Any]) -> None:
    for statement in role_statements(deployer):
        actions = set(as_list(statement["Action"]))
        assert not [a for a in actions if "*" in a], statement["Sid"]
        resources = [json.dumps(r) for r in as_list(statement["Resource"])]
        if resources == ['"*"']:
            assert actions <= WITHOUT_RESOURCE_LEVEL, statement["Sid"]
        elif statement["Sid"] in UNNAMED_RESOURCES:
            assert statement["Sid"] != "QueueTriggers" or "function:apns-push-" in json.dumps(
                statement["Condition"]
            )
        else:
            assert all("apns-push" in r or "ArtifactBucket" in r for r in resources), statement["Sid"]


def test_deployer_policy_allows_the_cli_and_nothing_else(deployer: dict[str, Any]) -> None:
    statements = deployer_statements(deployer)
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert actions - {"cloudformation:DescribeStackEvents", "cloudformation:DeleteStack"} == CLI_ACTIONS
    (create,) = [s for s in statements if "cloudformation:CreateChangeSet" in as_list(s["Action"])]
    assert create["Condition"] == {
        "StringEquals": {"cloudformation:RoleArn": {"Fn::GetAtt": ["StackRole", "Arn"]}}
    }
    (delete,) = [s for s in statements if "cloudformation:DeleteStack" in as_list(s["Action"])]
    assert "apns-push-prod" not in json.dumps(delete["Resource"]), "prod is never torn down from CI"
    for statement in statements:
        assert statement["Resource"] != "*", statement["Sid"]
