"""``make rehearse`` (``python -m devstack.rehearse --stage dev``): the deploy, rehearsed offline.

1. The packaged template (``make package``'s ``build/<stage>/sam.json``) goes through
   ``aws-sam-translator``, the library CloudFormation runs for ``AWS::Serverless-2016-10-31``.
2. The result is created as a stack in the embedded AWS emulator (moto server, on a free port),
   its code from the package uploaded to the emulator's S3. Resource types the emulator's
   CloudFormation cannot build are created or checked another way, and the report says which.
3. What the stack created is held to AWS's documented constraints (``check_constraints``).
4. The real handlers, from the deployment package, run with the environment the stack gave each
   function against the resources the stack created: a message goes in through the API handler and
   comes out of the send function into the APNs sandbox (``devstack/rehearse_flow.py``); every AWS
   action each performs is recorded and held to that function's role (``infra/least_privilege.py``).

Prints what it proved and what it could not check; exits 0 when everything holds.
"""

from __future__ import annotations

import argparse
import json
import secrets
import string
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.stack import VISIBILITY_PER_TIMEOUT

PROJECT_DIR = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
BUCKET = "rehearsal-artifacts"
# AWS: a function's reserved concurrency may not take the account's unreserved concurrency below 100.
UNRESERVED_MINIMUM = 100
DEFAULT_ACCOUNT_CONCURRENCY = 1000  # the default quota; many new accounts start lower (see README)
# AWS: "set the maxReceiveCount on the source queue's redrive policy to at least 5" for Lambda consumers.
MIN_RECEIVE_COUNT = 5
# CloudFormation types moto's CloudFormation accepts but cannot build as the template declares them.
BUILT_ANOTHER_WAY = {
    "AWS::ApiGateway::RestApi": "the REST API is built from its OpenAPI Body, which moto ignores",
    "AWS::ApiGateway::Deployment": "needs the REST API's methods",
    "AWS::ApiGateway::Stage": "needs the deployment",
}


@dataclass
class Report:
    proved: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, proved: str, problem: str) -> None:
        (self.proved if ok else self.problems).append(proved if ok else problem)

    def print(self) -> None:
        for title, lines in (
            ("proved", self.proved),
            ("not checked here (only a real account can)", self.unchecked),
            ("PROBLEMS", self.problems),
        ):
            if lines:
                print(f"\n{title}:")
                print("".join(f"  - {line}\n" for line in lines), end="")


class Aws:
    """boto3 clients against the emulator, with fake credentials."""

    def __init__(self, url: str) -> None:
        import boto3

        session = boto3.session.Session(
            aws_access_key_id="rehearsal",
            aws_secret_access_key="rehearsal",  # noqa: S106 (the emulator takes any)
            region_name=REGION,
        )
        self.url = url
        self._session = session
        self._clients: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._clients:
            name = "lambda" if service == "awslambda" else service  # `lambda` is Python's keyword
            self._clients[service] = self._session.client(name, endpoint_url=self.url)  # type: ignore[call-overload]
        return self._clients[service]


# ---- 1. translate --------------------------------------------------------------------------------


def translate(sam: dict[str, Any], code_uri: str) -> dict[str, Any]:
    """Plain CloudFormation, as CloudFormation's own transform would produce it."""
    import os

    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    sam = json.loads(json.dumps(sam))
    for res in sam["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = code_uri
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    try:
        cfn: dict[str, Any] = transform(sam, {}, NoManagedPolicies())
    except InvalidDocumentException as exc:
        raise SystemExit(
            "aws-sam-translator refused the template: " + "; ".join(map(str, exc.causes))
        ) from exc
    return cfn


def references(value: Any) -> set[str]:
    """Logical IDs a template value refers to (Ref, Fn::GetAtt, ${X} / ${X.Attr} in Fn::Sub)."""
    import re

    text = json.dumps(value)
    found = set(re.findall(r'"Ref": "([A-Za-z0-9]+)"', text))
    found |= set(re.findall(r'"Fn::GetAtt": \["([A-Za-z0-9]+)"', text))
    found |= set(re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z]+)?\}", text))
    return found


def split_unbuildable(cfn: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the emulator builds, the resources it cannot: to create or check another way)."""
    from moto.cloudformation.parsing import get_model_map

    buildable = get_model_map()

    resources = cfn["Resources"]
    removed = {
        rid: res
        for rid, res in resources.items()
        if res["Type"] in BUILT_ANOTHER_WAY or res["Type"] not in buildable
    }
    grew = True
    while grew:  # what refers to a removed resource cannot be built either (the API's invoke permission)
        more = {
            rid: res
            for rid, res in resources.items()
            if rid not in removed and references(res) & set(removed)
        }
        removed.update(more)
        grew = bool(more)
    kept = {
        **cfn,
        "Resources": {rid: res for rid, res in resources.items() if rid not in removed},
        "Outputs": {k: v for k, v in cfn.get("Outputs", {}).items() if not references(v) & set(removed)},
    }
    return kept, removed


# ---- 2. create -----------------------------------------------------------------------------------


def create_stack(aws: Aws, name: str, template: dict[str, Any], zip_path: Path) -> dict[str, str]:
    """Create the stack; answers logical ID -> physical ID of what it created."""
    aws.s3.create_bucket(Bucket=BUCKET)
    aws.s3.upload_file(str(zip_path), BUCKET, zip_path.name)
    aws.cloudformation.create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.monotonic() + 120
    while True:
        stack = aws.cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        events = aws.cloudformation.describe_stack_events(StackName=name)["StackEvents"]
        failed = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
            for e in events
            if "FAILED" in e["ResourceStatus"]
        ]
        raise SystemExit(f"stack {name} ended {stack['StackStatus']}: {failed}")
    summaries = aws.cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
    return {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries}


def generated_string(spec: dict[str, Any]) -> str:
    alphabet = (
        string.ascii_letters + string.digits + ("" if spec.get("ExcludePunctuation") else "!#$%&*+-.:=?@^_~")
    )
    alphabet = "".join(c for c in alphabet if c not in spec.get("ExcludeCharacters", ""))
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "SecretStringTemplate" in spec:
        doc = json.loads(spec["SecretStringTemplate"])
        doc[spec["GenerateStringKey"]] = value
        return json.dumps(doc)
    return value


def build_another_way(
    aws: Aws, removed: dict[str, Any], app_routes: set[tuple[str, str]], report: Report
) -> dict[str, str]:
    """Create (or check) what the emulator's CloudFormation cannot; answers their physical IDs."""
    physical: dict[str, str] = {}
    for rid, res in removed.items():
        kind, props = res["Type"], res.get("Properties", {})
        if kind == "AWS::SecretsManager::Secret":
            created = aws.secretsmanager.create_secret(
                Name=props["Name"],
                Description=props.get("Description", ""),
                SecretString=generated_string(props.get("GenerateSecretString", {})),
            )
            physical[rid] = created["ARN"]
            report.proved.append(
                f"{rid} ({kind}, not built by the emulator's CloudFormation): created from its properties through the API"
            )
        elif kind == "AWS::ApiGateway::RestApi":
            physical[rid] = check_rest_api(aws, rid, props, app_routes, report)
        elif kind in BUILT_ANOTHER_WAY:
            report.unchecked.append(
                f"{rid} ({kind}): {BUILT_ANOTHER_WAY[kind]}; deployed only by a real account"
            )
        elif kind == "AWS::Lambda::Permission":
            report.unchecked.append(
                f"{rid} ({kind}): API Gateway's permission to invoke {references(props) - {rid}}; only a real request through API Gateway uses it"
            )
        else:
            report.unchecked.append(f"{rid} ({kind}): the emulator's CloudFormation cannot build it")
    return physical


def check_rest_api(
    aws: Aws, rid: str, props: dict[str, Any], app_routes: set[tuple[str, str]], report: Report
) -> str:
    """The API's OpenAPI Body against the Swagger 2.0 schema and the app's routes; imported into the
    emulator's API Gateway when it can (moto imports OpenAPI 3 only; chalice writes Swagger 2.0)."""
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    body = json.loads(json.dumps(props["Body"]))
    try:
        validate(body)
        report.proved.append(
            f"{rid}: its body is a valid {'Swagger ' + body['swagger'] if 'swagger' in body else 'OpenAPI'} document"
        )
    except OpenAPIValidationError as exc:
        report.problems.append(f"{rid}: its body is not a valid API document: {exc.message}")
    declared = {
        (path, method.upper())
        for path, ops in body.get("paths", {}).items()
        for method in ops
        if method in ("get", "put", "post", "delete", "patch", "head", "options")
    }
    missing = app_routes - declared
    extra = declared - app_routes - {(p, "OPTIONS") for p, _ in declared}
    report.check(
        not missing and not extra,
        f"{rid}: the template's paths are exactly the app's {len(app_routes)} routes",
        f"{rid}: routes in the app but not the template {sorted(missing)[:5]}, in the template only {sorted(extra)[:5]}",
    )
    not_proxied = [
        (path, method)
        for path, ops in body.get("paths", {}).items()
        for method, op in ops.items()
        if method != "options" and op.get("x-amazon-apigateway-integration", {}).get("type") != "aws_proxy"
    ]
    report.check(
        not not_proxied,
        f"{rid}: every method is a Lambda proxy integration",
        f"{rid}: methods not proxied to the API handler: {not_proxied[:5]}",
    )
    if "openapi" not in body:
        report.unchecked.append(
            f"{rid}: importing its Swagger 2.0 body into API Gateway (the emulator imports OpenAPI 3 only), "
            "its deployment and stage, its gateway responses and throttling"
        )
        return ""
    api = aws.apigateway.import_rest_api(body=json.dumps(body).encode(), failOnWarnings=True)
    return str(api["id"])


# ---- 3. AWS's documented constraints -------------------------------------------------------------


def check_constraints(
    aws: Aws, physical: dict[str, str], cfn: dict[str, Any], report: Report, account_concurrency: int
) -> None:
    types = {rid: res["Type"] for rid, res in cfn["Resources"].items()}
    functions = {
        rid: aws.awslambda.get_function(FunctionName=physical[rid])
        for rid, t in types.items()
        if t == "AWS::Lambda::Function"
    }
    queue_urls = {rid: physical[rid] for rid, t in types.items() if t == "AWS::SQS::Queue"}
    queue_attrs = {
        rid: aws.sqs.get_queue_attributes(
            QueueUrl=url.replace("https://sqs.us-east-1.amazonaws.com", aws.url), AttributeNames=["All"]
        )["Attributes"]
        for rid, url in queue_urls.items()
    }
    by_arn = {attrs["QueueArn"]: rid for rid, attrs in queue_attrs.items()}

    reserved = 0
    for rid, fn in functions.items():
        config = fn["Configuration"]
        reserved += int(fn.get("Concurrency", {}).get("ReservedConcurrentExecutions") or 0)
        for esm in aws.awslambda.list_event_source_mappings(FunctionName=config["FunctionName"])[
            "EventSourceMappings"
        ]:
            qid = by_arn.get(esm["EventSourceArn"], esm["EventSourceArn"])
            attrs = queue_attrs.get(qid, {})
            need = VISIBILITY_PER_TIMEOUT * config["Timeout"] + int(
                esm.get("MaximumBatchingWindowInSeconds") or 0
            )
            report.check(
                int(attrs.get("VisibilityTimeout", 30)) >= need,
                f"{qid}: visibility timeout {attrs.get('VisibilityTimeout')} s >= 6 x {rid}'s timeout {config['Timeout']} s + its batching window",
                f"{qid}: visibility timeout {attrs.get('VisibilityTimeout')} s < {need} s (6 x {rid}'s timeout + batching window)",
            )
            report.check(
                "ReportBatchItemFailures" in (esm.get("FunctionResponseTypes") or []),
                f"{rid} <- {qid}: reports partial batch failures (ReportBatchItemFailures)",
                f"{rid} <- {qid}: no ReportBatchItemFailures: one failed record retries its whole batch",
            )
            cap = (esm.get("ScalingConfig") or {}).get("MaximumConcurrency")
            limit = fn.get("Concurrency", {}).get("ReservedConcurrentExecutions")
            report.check(
                limit is None or (cap is not None and 2 <= cap <= limit),
                f"{rid} <- {qid}: the SQS pollers' maximum concurrency {cap} is within its reserved concurrency {limit}",
                f"{rid} <- {qid}: maximum concurrency {cap} vs reserved {limit}: the pollers would be throttled and burn receives",
            )
            redrive = json.loads(attrs.get("RedrivePolicy") or "{}")
            dlq = by_arn.get(redrive.get("deadLetterTargetArn", ""))
            report.check(
                dlq is not None and int(redrive.get("maxReceiveCount", 0)) >= MIN_RECEIVE_COUNT,
                f"{qid}: redrives to {dlq} after {redrive.get('maxReceiveCount')} receives (AWS: at least {MIN_RECEIVE_COUNT} for a Lambda consumer)",
                f"{qid}: redrive {redrive or 'missing'}: needs a dead-letter queue of the stack and maxReceiveCount >= {MIN_RECEIVE_COUNT}",
            )
            if dlq is not None:
                report.check(
                    int(queue_attrs[dlq]["MessageRetentionPeriod"]) > int(attrs["MessageRetentionPeriod"]),
                    f"{dlq}: keeps messages longer than {qid} (an SQS message keeps its first enqueue time)",
                    f"{dlq}: retention {queue_attrs[dlq]['MessageRetentionPeriod']} s is not longer than {qid}'s",
                )
        groups = aws.logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{config['FunctionName']}")[
            "logGroups"
        ]
        group = next(
            (g for g in groups if g["logGroupName"] == f"/aws/lambda/{config['FunctionName']}"), None
        )
        report.check(
            group is not None and bool(group.get("retentionInDays")),
            f"{rid}: logs to /aws/lambda/{config['FunctionName']}, kept {group and group.get('retentionInDays')} days",
            f"{rid}: no log group /aws/lambda/{config['FunctionName']} with a retention: its logs would be kept forever",
        )
        check_environment(aws, rid, config, physical, report)
    report.check(
        reserved <= account_concurrency - UNRESERVED_MINIMUM,
        f"reserved concurrency {reserved} in all leaves {account_concurrency - reserved} unreserved of an account's {account_concurrency} (AWS keeps >= {UNRESERVED_MINIMUM})",
        f"reserved concurrency {reserved} leaves under {UNRESERVED_MINIMUM} unreserved of {account_concurrency}: Lambda refuses it",
    )
    report.unchecked.append(
        f"the account's real concurrency quota (assumed {account_concurrency}; new accounts may have far less: "
        "`aws lambda get-account-settings`)"
    )


def check_environment(
    aws: Aws, rid: str, config: dict[str, Any], physical: dict[str, str], report: Report
) -> None:
    """Every table, queue and secret a function's environment names is one the stack created."""
    env = config.get("Environment", {}).get("Variables", {})
    created = (
        set(physical.values())
        | {p.rsplit("/", 1)[-1] for p in physical.values()}
        | {p.split(":")[-1] for p in physical.values()}
    )
    named = {k: v for k, v in env.items() if k.endswith(("TABLE_NAME", "QUEUE_NAME", "SECRET_ID"))}
    for key, value in named.items():
        found = value in created or any(value in p and key.endswith("SECRET_ID") for p in physical.values())
        report.check(
            found,
            f"{rid}: {key}={value} is created by the stack",
            f"{rid}: {key}={value} names nothing the stack created",
        )
    prefix = env.get("SECRETS_PREFIX")
    if prefix:
        under = [k for k, v in named.items() if k.endswith("SECRET_ID") and not v.startswith(prefix)]
        report.check(
            not under,
            f"{rid}: its secrets are under SECRETS_PREFIX={prefix}",
            f"{rid}: {under} not under {prefix}",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.rehearse", description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--build", type=Path, help="the package directory (default: build/<stage>)")
    parser.add_argument("--account-concurrency", type=int, default=DEFAULT_ACCOUNT_CONCURRENCY)
    parser.add_argument("--actions-log", type=Path, help="keep the recorded actions in this file")
    args = parser.parse_args(argv)
    from devstack.rehearse_flow import rehearse

    report = rehearse(
        args.stage,
        args.build or PROJECT_DIR / "build" / args.stage,
        args.account_concurrency,
        args.actions_log,
    )
    report.print()
    print(
        f"\nrehearse: {len(report.proved)} proved, {len(report.unchecked)} left to a real account, {len(report.problems)} problems"
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
