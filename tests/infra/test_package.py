"""``make package`` for dev and prod: the template declares what the service needs, wired once, and
cfn-lint finds nothing in it. Runs the real ``python -m infra.package`` (chalice package, offline)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.settings import Settings
from infra.stack import function_logical_id, queue_reference, sqs_events
from tests.infra.iam import (
    ROOT,
    STAGES,
    allows,
    arn,
    as_list,
    function_policy,
    load_policy,
    resolve,
    stage_env,
    stage_functions,
)

pytest.importorskip("chalice", reason="chalice is not installed: `make` installs it (requirements-dev.txt)")

CFN_LINT = Path(sys.executable).parent / "cfn-lint"
BATCH_ITEM_FAILURES = ["ReportBatchItemFailures"]


@pytest.fixture(params=STAGES)
def stage(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def template(built: dict[str, Path], stage: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(built[stage].read_text())
    return loaded


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {rid: r for rid, r in template["Resources"].items() if r["Type"] == kind}


def the_queue(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    found = [
        (rid, r)
        for rid, r in resources_of(template, "AWS::SQS::Queue").items()
        if r["Properties"]["QueueName"] == name
    ]
    assert len(found) == 1, f"expected one queue named {name}, found {len(found)}"
    return found[0]


def walk(node: Any, key: str) -> Iterator[Any]:
    """Every value stored under ``key`` anywhere in the template."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)


# ---- the table, the queues, the secret ----------------------------------------------------------


def test_table_has_the_key_schema_ttl_pitr_and_encryption(template: dict[str, Any], stage: str) -> None:
    (table,) = resources_of(template, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["TableName"] == stage_env(stage)["TABLE_NAME"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert {(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]} == {
        ("pk", "HASH"),
        ("sk", "RANGE"),
    }
    assert {(a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
    }
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}


@pytest.mark.parametrize("queue_var", ["INTAKE_QUEUE_NAME", "SEND_QUEUE_NAME", "WEBHOOK_QUEUE_NAME"])
def test_queues_redrive_to_their_dead_letter_queues(
    template: dict[str, Any], stage: str, queue_var: str
) -> None:
    name = stage_env(stage)[queue_var]
    _, queue = the_queue(template, name)
    dlq_id, dlq = the_queue(template, f"{name}-dlq")
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    assert redrive["maxReceiveCount"] == 5
    if queue_var != "SEND_QUEUE_NAME":  # the intake and webhook DLQs keep what fails for 14 days
        assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 86400
        assert "RedrivePolicy" not in dlq["Properties"]
        return
    # The send DLQ is consumed (its records settled in the report) and redrives to the parked queue,
    # which keeps what it settled for a redrive, longer than the DLQ keeps anything.
    parked_id, parked = the_queue(template, f"{name}-parked")
    assert dlq["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [parked_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    assert parked["Properties"]["MessageRetentionPeriod"] == 14 * 86400
    assert dlq["Properties"]["MessageRetentionPeriod"] < parked["Properties"]["MessageRetentionPeriod"]
    assert "RedrivePolicy" not in parked["Properties"]


def test_operator_key_is_a_generated_secret(template: dict[str, Any], stage: str) -> None:
    (secret,) = resources_of(template, "AWS::SecretsManager::Secret").values()
    env = stage_env(stage)
    assert secret["Properties"]["Name"] == env["OPERATOR_KEY_SECRET_ID"]
    assert (
        env["OPERATOR_KEY_SECRET_ID"].startswith(env["SECRETS_PREFIX"])
        and env["SECRETS_PREFIX"] == f"apns-push/{stage}/"
    )
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "operatorKey"
    assert json.loads(generated["SecretStringTemplate"]) == {}
    assert "SecretString" not in secret["Properties"], "the key is generated, never written in the template"


def test_prod_keeps_its_data_and_dev_can_be_torn_down(template: dict[str, Any], stage: str) -> None:
    kinds = ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SecretsManager::Secret")
    expected = "Retain" if stage == "prod" else "Delete"
    for kind in kinds:
        for rid, res in resources_of(template, kind).items():
            assert (res["DeletionPolicy"], res["UpdateReplacePolicy"]) == (expected, expected), rid


# ---- the functions and their triggers -----------------------------------------------------------


def test_every_sqs_trigger_reports_batch_item_failures_on_its_own_queue(
    template: dict[str, Any], stage: str
) -> None:
    env = stage_env(stage)
    consumed = {}
    for fn_id, _, props in sqs_events(template):
        assert len(props["Queue"]) == 1, f"{fn_id}: conflicting queue references {props['Queue']}"
        queue_id = queue_reference(props["Queue"])
        assert queue_id is not None, f"{fn_id}: {props['Queue']} is not a reference to a queue resource"
        consumed[fn_id] = template["Resources"][queue_id]["Properties"]["QueueName"]
        assert props["FunctionResponseTypes"] == BATCH_ITEM_FAILURES
    assert consumed == {
        "FanOut": env["INTAKE_QUEUE_NAME"],
        "Send": env["SEND_QUEUE_NAME"],
        "Webhook": env["WEBHOOK_QUEUE_NAME"],
        "SettleDeadLetters": env["SEND_QUEUE_NAME"] + "-dlq",
    }


def test_queue_names_appear_only_in_the_queues_and_the_policies(template: dict[str, Any]) -> None:
    """No by-name queue ARN left over from chalice: a trigger must depend on the queue resource."""
    for fn_id, fn in resources_of(template, "AWS::Serverless::Function").items():
        for event in fn["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                assert "arn:" not in json.dumps(event["Properties"]["Queue"]), fn_id


def test_visibility_timeout_is_at_least_six_consumer_timeouts(template: dict[str, Any]) -> None:
    for fn_id, _, props in sqs_events(template):
        timeout = template["Resources"][fn_id]["Properties"]["Timeout"]
        queue = template["Resources"][queue_reference(props["Queue"]) or ""]
        assert queue["Properties"]["VisibilityTimeout"] >= 6 * timeout, fn_id


def test_sqs_pollers_stay_within_reserved_concurrency(template: dict[str, Any]) -> None:
    for fn_id, _, props in sqs_events(template):
        reserved = template["Resources"][fn_id]["Properties"]["ReservedConcurrentExecutions"]
        assert props["ScalingConfig"]["MaximumConcurrency"] <= reserved, fn_id


def test_send_lease_outlasts_the_send_timeout(template: dict[str, Any]) -> None:
    """A chunk is retaken after the lease: a live invocation must have ended by then, or it double-sends."""
    send = template["Resources"]["Send"]["Properties"]
    lease = Settings.model_validate(send["Environment"]["Variables"]).send_lease_s
    assert lease > send["Timeout"]


def test_every_function_logs_to_its_own_log_group_with_retention(
    template: dict[str, Any], stage: str
) -> None:
    groups = resources_of(template, "AWS::Logs::LogGroup")
    named = set()
    for fn_id, fn in resources_of(template, "AWS::Serverless::Function").items():
        group = groups[fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert group["LogGroupName"] == f"/aws/lambda/{fn['Properties']['FunctionName']}", fn_id
        assert group["RetentionInDays"] > 0
        named.add(group["LogGroupName"])
    policy = load_policy(stage)
    for name in named:
        stream = arn("logs", f"log-group:{name}:log-stream:2026/01/01/[$LATEST]abc")
        assert allows(policy, "logs:PutLogEvents", stream), name
    granted = {
        r
        for s in policy["Statement"]
        if s["Sid"] in ("OwnLogGroup", "OwnLogGroups")
        for r in map(resolve, as_list(s["Resource"]))
    }
    assert granted == {arn("logs", f"log-group:{n}:*") for n in named}, (
        "a log group in the policy has no function"
    )


def test_api_is_throttled(template: dict[str, Any]) -> None:
    (api,) = resources_of(template, "AWS::Serverless::Api").values()
    (setting,) = api["Properties"]["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
    assert 0 < setting["ThrottlingRateLimit"] <= setting["ThrottlingBurstLimit"]


def test_api_gateways_own_answers_are_in_the_api_error_shape(template: dict[str, Any]) -> None:
    """No route (API Gateway's 403 "Missing Authentication Token") becomes our 404, a body over
    10 MB our 413, and every other 4xx / 5xx API Gateway answers itself {"error": {code, message}}."""
    (api,) = resources_of(template, "AWS::Serverless::Api").values()
    responses = api["Properties"]["GatewayResponses"]
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == 404
    assert responses["REQUEST_TOO_LARGE"]["StatusCode"] == 413
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED"} <= set(responses)
    for kind, response in responses.items():
        body = json.loads(response["ResponseTemplates"]["application/json"])
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, kind
        assert response["ResponseParameters"]["Headers"]["Content-Type"] == "'application/json'", kind


def test_console_is_packaged_and_routed(template: dict[str, Any], built: dict[str, Path], stage: str) -> None:
    (api,) = resources_of(template, "AWS::Serverless::Api").values()
    paths = api["Properties"]["DefinitionBody"]["paths"]
    assert {"/console", "/console/{asset}"} <= set(paths)
    names = zipfile.ZipFile(built[stage].parent / "deployment.zip").namelist()
    for name in ("index.html", "console.js", "console.css"):
        assert f"chalicelib/console/{name}" in names


# ---- IAM ----------------------------------------------------------------------------------------


def test_no_wildcard_iam_action_anywhere(template: dict[str, Any]) -> None:
    actions = [a for value in walk(template, "Action") for a in as_list(value) if isinstance(a, str)]
    assert actions and not [a for a in actions if "*" in a]


def test_every_role_carries_its_functions_policy_file(template: dict[str, Any], stage: str) -> None:
    roles = resources_of(template, "AWS::IAM::Role")
    assert len(roles) == len(resources_of(template, "AWS::Serverless::Function"))
    by_role = {
        ("ApiHandler" if f == "api_handler" else function_logical_id(f)) + "Role": f
        for f in stage_functions(stage)
    }
    for rid, role in roles.items():
        (policy,) = role["Properties"]["Policies"]
        assert policy["PolicyDocument"] == function_policy(stage, by_role[rid]), rid
        assert "ManagedPolicyArns" not in role["Properties"], rid


def test_consumers_may_read_and_delete_from_their_queue(template: dict[str, Any], stage: str) -> None:
    by_id = {function_logical_id(f): f for f in stage_functions(stage)}
    for fn_id, _, props in sqs_events(template):
        policy = function_policy(stage, by_id[fn_id])
        name = template["Resources"][queue_reference(props["Queue"]) or ""]["Properties"]["QueueName"]
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            assert allows(policy, action, arn("sqs", name)), (fn_id, action)


# ---- cfn-lint -----------------------------------------------------------------------------------


def test_cfn_lint_finds_nothing(built: dict[str, Path]) -> None:
    """Both stages' templates and the deployer's, default rules (which include IAM action names)."""
    assert shutil.which(str(CFN_LINT)), "cfn-lint is missing: `make` installs it (requirements-dev.txt)"
    templates = [*map(str, built.values()), str(ROOT / "infra" / "deployer.yaml")]
    done = subprocess.run(
        [str(CFN_LINT), "--", *templates], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_package_ships_precompiled_bytecode_that_loads(built: dict[str, Path], tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    package = built["dev"].parent / "deployment.zip"
    with zipfile.ZipFile(package) as z:
        names = set(z.namelist())
        z.extractall(tmp_path)
    modules = [n for n in names if n.endswith(".py") and n.startswith(("app.py", "chalicelib/"))]
    assert modules
    for module in modules:
        folder, _, file = module.rpartition("/")
        prefix = f"{folder}/" if folder else ""
        assert f"{prefix}__pycache__/{file[:-3]}.{sys.implementation.cache_tag}.pyc" in names, module
    # The interpreter uses them as they are: nothing needs compiling (and nothing is written).
    code = "import app, sys; assert app.__cached__.endswith('.pyc'); print(sorted(sys.modules)[:1])"
    env = {"PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1", "AWS_DEFAULT_REGION": "us-east-1"}
    subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True)
