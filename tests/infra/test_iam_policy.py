"""The stage policies grant exactly what the service calls, and only on the stage's own resources.

The calls are read from chalicelib/ with ``ast``: a method called on a boto3 client whose type
is annotated (a repository's ``client: DynamoDBClient`` field, or a ``client: DynamoDBClient``
parameter) is an AWS operation, and botocore's service model names its IAM action. A call on
something that may be a client but is not annotated as one fails the test, so a new code path
cannot slip past it.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from tests.infra.iam import (
    ROOT,
    STAGES,
    allowed_actions,
    allows,
    arn,
    chalice_config,
    load_policy,
    stage_env,
    statements,
)

CLIENT_TYPES = {"DynamoDBClient": "dynamodb", "SQSClient": "sqs", "SecretsManagerClient": "secretsmanager"}

# Operations IAM authorizes under another action's name.
SAME_AS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "dynamodb:TransactGetItems": "dynamodb:GetItem",
}
# TransactWriteItems has no action of its own: IAM checks each item's action.
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# Used on the functions' behalf, not called by the code.
RUNTIME_ACTIONS = {
    "sqs:ReceiveMessage": "the SQS event source mappings poll the consumed queues",
    "sqs:DeleteMessage": "... and delete the records a batch processed",
    "sqs:GetQueueAttributes": "... and read the queue when the mapping is created",
    "logs:CreateLogStream": "Lambda writes each function's logs (the stack creates the log groups)",
    "logs:PutLogEvents": "... into them",
}
CONSUMER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


@dataclass(frozen=True)
class Call:
    where: str
    service: str
    method: str
    actions: frozenset[str]


@cache
def operations(service: str) -> dict[str, str]:
    """boto3 method name -> API operation name (``batch_get_item`` -> ``BatchGetItem``)."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


def _type_name(node: ast.expr | None) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.rsplit(".", 1)[-1]
    return ""


class _ClientCalls(ast.NodeVisitor):
    """Method calls on ``self.<client field>`` and on client parameters, with their enclosing function."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[tuple[str, str, str, ast.AST]] = []  # where, service, method, function
        self.unattributed: list[str] = []
        self._fields: list[dict[str, str]] = [{}]
        self._params: list[dict[str, str]] = [{}]
        self._functions: list[ast.AST] = []
        self._maybe_aws = {m for s in CLIENT_TYPES.values() for m in operations(s)}

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        fields = {
            stmt.target.id: CLIENT_TYPES[_type_name(stmt.annotation)]
            for stmt in node.body
            if isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and _type_name(stmt.annotation) in CLIENT_TYPES
        }
        self._fields.append(fields)
        self.generic_visit(node)
        self._fields.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        self._params.append(
            {
                a.arg: CLIENT_TYPES[_type_name(a.annotation)]
                for a in args
                if _type_name(a.annotation) in CLIENT_TYPES
            }
        )
        self._functions.append(node)
        self.generic_visit(node)
        self._functions.pop()
        self._params.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute):
            receiver, method = node.func.value, node.func.attr
            service = None
            if isinstance(receiver, ast.Attribute) and isinstance(receiver.value, ast.Name):
                if receiver.value.id == "self":
                    service = self._fields[-1].get(receiver.attr)
            elif isinstance(receiver, ast.Name):
                service = self._params[-1].get(receiver.id)
            where = f"{self.path}:{node.lineno}"
            if service is not None:
                self.found.append((where, service, method, self._functions[-1]))
            elif method in self._maybe_aws and not _is_known_non_client(receiver):
                self.unattributed.append(f"{where}: {ast.unparse(node.func)}()")
        self.generic_visit(node)


def _is_known_non_client(receiver: ast.expr) -> bool:
    """Receivers that share a method name with an AWS operation but are plainly not clients."""
    return isinstance(receiver, ast.Constant | ast.Dict | ast.List | ast.JoinedStr)


def _actions(where: str, service: str, method: str, function: ast.AST) -> frozenset[str]:
    ops = operations(service)
    if method not in ops:
        raise AssertionError(
            f"{where}: {service} client .{method}() is not an API operation (a paginator or waiter?): "
            "teach this test which IAM actions it needs"
        )
    action = f"{service}:{ops[method]}"
    if action != "dynamodb:TransactWriteItems":
        return frozenset({SAME_AS.get(action, action)})
    kinds = {
        key.value
        for node in ast.walk(function)
        if isinstance(node, ast.Dict)
        for key in node.keys
        if isinstance(key, ast.Constant) and key.value in TRANSACT_ITEM_ACTIONS
    }
    assert kinds, f"{where}: cannot tell which items this TransactWriteItems writes (Put/Update/Delete)"
    return frozenset(TRANSACT_ITEM_ACTIONS[k] for k in kinds)


@cache
def scan_code() -> tuple[tuple[Call, ...], tuple[str, ...]]:
    calls: list[Call] = []
    unattributed: list[str] = []
    for path in sorted([ROOT / "app.py", *(ROOT / "chalicelib").rglob("*.py")]):
        visitor = _ClientCalls(str(path.relative_to(ROOT)))
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        calls += [Call(w, s, m, _actions(w, s, m, f)) for w, s, m, f in visitor.found]
        unattributed += visitor.unattributed
    return tuple(calls), tuple(unattributed)


def code_actions() -> dict[str, list[str]]:
    """IAM action -> where the code calls it."""
    out: dict[str, list[str]] = {}
    for call in scan_code()[0]:
        for action in call.actions:
            out.setdefault(action, []).append(call.where)
    return out


# ---- the code's calls ---------------------------------------------------------------------------


def test_every_aws_call_is_made_on_an_annotated_client() -> None:
    _, unattributed = scan_code()
    assert not unattributed, (
        "these calls look like AWS operations on something not annotated as a boto3 client; annotate "
        "the client (DynamoDBClient, SQSClient, SecretsManagerClient) so the policy test sees them:\n  "
        + "\n  ".join(unattributed)
    )


def test_the_scan_finds_the_services_calls() -> None:
    """Guards the test itself: a parser that found nothing would pass everything below."""
    calls, _ = scan_code()
    assert {c.service for c in calls} == set(CLIENT_TYPES.values())
    assert {"dynamodb:BatchGetItem", "sqs:SendMessage", "secretsmanager:GetSecretValue"} <= set(
        code_actions()
    )


# ---- the policies -------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_every_call_has_a_permission(stage: str) -> None:
    granted = allowed_actions(load_policy(stage))
    missing = {a: w for a, w in code_actions().items() if a not in granted}
    assert not missing, f"add to .chalice/policy-{stage}.json: " + "; ".join(
        f"{a} (called at {', '.join(w[:3])})" for a, w in sorted(missing.items())
    )


@pytest.mark.parametrize("stage", STAGES)
def test_every_permission_has_a_call(stage: str) -> None:
    needed = set(code_actions()) | set(RUNTIME_ACTIONS)
    unused = sorted(allowed_actions(load_policy(stage)) - needed)
    assert not unused, f"nothing calls {unused}: remove them from .chalice/policy-{stage}.json"


@pytest.mark.parametrize("stage", STAGES)
def test_no_wildcard_actions(stage: str) -> None:
    wild = [a for s in statements(load_policy(stage)) for a in s.actions if "*" in a or "?" in a]
    assert not wild


@pytest.mark.parametrize("stage", STAGES)
def test_each_service_is_granted_on_the_stages_own_resources_only(stage: str) -> None:
    env = stage_env(stage)
    queues = [env["INTAKE_QUEUE_NAME"], env["SEND_QUEUE_NAME"], env["WEBHOOK_QUEUE_NAME"]]
    own_log_group = re.compile(
        rf"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/apns-push-{stage}(-[A-Za-z0-9_]+)?:\*"
    )
    expected = {
        "dynamodb": {arn("dynamodb", f"table/{env['TABLE_NAME']}")},
        "sqs": {arn("sqs", q + suffix) for q in queues for suffix in ("", "-dlq")}
        | {arn("sqs", env["SEND_QUEUE_NAME"] + "-parked")},
        "secretsmanager": {arn("secretsmanager", f"secret:{env['SECRETS_PREFIX']}*")},
    }
    for s in statements(load_policy(stage)):
        if s.effect != "Allow":
            continue
        services = {a.split(":", 1)[0] for a in s.actions}
        assert len(services) == 1, f"{s.sid}: one service per statement, so each scope reads on its own"
        (service,) = services
        if service == "logs":
            assert all(own_log_group.fullmatch(r) for r in s.resources), s.resources
        else:
            # the same resource, or one within it (a narrower secret pattern under the stage's prefix)
            outside = [
                r
                for r in s.resources
                if not any(r == e or (e.endswith("*") and r.startswith(e[:-1])) for e in expected[service])
            ]
            assert not outside, f"{s.sid}: {outside}"


@pytest.mark.parametrize("stage", STAGES)
def test_queues_are_consumed_and_fed_as_the_code_needs(stage: str) -> None:
    env = stage_env(stage)
    policy = load_policy(stage)
    send = env["SEND_QUEUE_NAME"]
    for queue in (env["INTAKE_QUEUE_NAME"], send):
        for action in CONSUMER_ACTIONS:
            assert allows(policy, action, arn("sqs", queue))
            # only the send DLQ is consumed: its records are settled in the report (settle_dead_letters)
            assert allows(policy, action, arn("sqs", queue + "-dlq")) == (queue == send)
            assert not allows(policy, action, arn("sqs", send + "-parked")), "parked: kept for a redrive"
        for name in (queue, queue + "-dlq"):  # enqueue, retry, and dead-letter with a reason
            assert allows(policy, "sqs:SendMessage", arn("sqs", name))
            assert allows(policy, "sqs:GetQueueUrl", arn("sqs", name))
    assert allows(policy, "sqs:SendMessage", arn("sqs", send + "-parked"))


@pytest.mark.parametrize("stage", STAGES)
def test_another_stages_resources_are_out_of_reach(stage: str) -> None:
    policy = load_policy(stage)
    for other in set(STAGES) - {stage}:
        env = stage_env(other)
        assert not allows(policy, "dynamodb:GetItem", arn("dynamodb", f"table/{env['TABLE_NAME']}"))
        assert not allows(
            policy, "dynamodb:GetItem", arn("dynamodb", f"table/{stage_env(stage)['TABLE_NAME']}x")
        )
        assert not allows(policy, "sqs:SendMessage", arn("sqs", env["SEND_QUEUE_NAME"]))
        secret = arn("secretsmanager", f"secret:{env['SECRETS_PREFIX']}app1/app-secret-key-AbC123")
        assert not allows(policy, "secretsmanager:GetSecretValue", secret)


@pytest.mark.parametrize("stage", STAGES)
def test_app_secrets_are_managed_but_the_operator_key_is_read_only(stage: str) -> None:
    env = stage_env(stage)
    policy = load_policy(stage)
    app_secret = arn("secretsmanager", f"secret:{env['SECRETS_PREFIX']}app1/credentials/1-AbC123")
    operator_key = arn("secretsmanager", f"secret:{env['OPERATOR_KEY_SECRET_ID']}-AbC123")
    writes = ("secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret")
    for action in (*writes, "secretsmanager:GetSecretValue"):
        assert allows(policy, action, app_secret), action
    assert allows(policy, "secretsmanager:GetSecretValue", operator_key)
    for action in writes:
        assert not allows(policy, action, operator_key), action


def test_stages_deploy_with_their_hand_written_policy() -> None:
    config = chalice_config()
    for stage in STAGES:
        settings = config["stages"][stage]
        assert settings["iam_policy_file"] == f"policy-{stage}.json"
        assert settings.get("autogen_policy", config.get("autogen_policy")) is False


# ---- the webhook function's own role ------------------------------------------------------------


def _webhook_policy(stage: str) -> dict[str, Any]:
    name = chalice_config()["stages"][stage]["lambda_functions"]["webhook"]["iam_policy_file"]
    return dict(json.loads((ROOT / ".chalice" / name).read_text()))


@pytest.mark.parametrize("stage", STAGES)
def test_the_webhook_function_has_its_own_least_privilege_role(stage: str) -> None:
    env = stage_env(stage)
    policy = _webhook_policy(stage)
    table = arn("dynamodb", f"table/{env['TABLE_NAME']}")
    hooks, send = env["WEBHOOK_QUEUE_NAME"], env["SEND_QUEUE_NAME"]
    # What it does: read settings and reports, record each POST, retry and dead-letter, read the secret
    for action in ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"):
        assert allows(policy, action, table), action
    for action in CONSUMER_ACTIONS:
        assert allows(policy, action, arn("sqs", hooks))
    for name in (hooks, hooks + "-dlq"):
        assert allows(policy, "sqs:SendMessage", arn("sqs", name))
    webhook_secret = arn("secretsmanager", f"secret:{env['SECRETS_PREFIX']}app-1/webhook-secret-AbC123")
    assert allows(policy, "secretsmanager:GetSecretValue", webhook_secret)
    # What it cannot: push credentials, app keys, the send queue, writing anything but its log items
    for other in ("credentials/1", "app-secret-key", "receipt-key"):
        secret = arn("secretsmanager", f"secret:{env['SECRETS_PREFIX']}app-1/{other}-AbC123")
        assert not allows(policy, "secretsmanager:GetSecretValue", secret), other
    assert not allows(policy, "sqs:SendMessage", arn("sqs", send))
    for action in ("dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"):
        assert not allows(policy, action, table), action
    assert all("*" not in a for s in statements(policy) for a in s.actions)
