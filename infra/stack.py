"""The resources chalice does not declare, as a ``chalice package --merge-template`` file.

Chalice packages the functions, their roles and the REST API. This adds what they run
against (the table, the intake, send and webhook queues with their dead-letter queues, the operator
key, one log group per function) and adjusts what chalice generated: every SQS trigger
references its queue *resource*, reports partial batch failures and polls no faster than
its function's reserved concurrency; the API is throttled.

Chalice's merge is a naive deep merge: a dict here is merged key by key into the generated
one. An override therefore keeps the generated value's keys: the trigger's queue stays an
``Fn::Sub``, now naming the queue resource (``${SendQueue.Arn}``), so it replaces chalice's
by-name ARN instead of sitting next to it. ``check_template`` verifies the merged result.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.api.gateway import sam_gateway_responses
from chalicelib.store.queues import DLQ_SUFFIX, PARKED_SUFFIX
from chalicelib.store.schema import MAX_RECEIVE_COUNT, TTL_ATTRIBUTE, table_definition

API_HANDLER = "api_handler"  # chalice's name for the function behind the REST API
# The code dead-letters to <queue>-dlq (DLQ_SUFFIX); the send DLQ's consumer (settle_dead_letters)
# parks what it settled on <send queue>-parked (PARKED_SUFFIX), that DLQ's own dead-letter queue.
QUEUE_RETENTION_S = 4 * 86400
DLQ_RETENTION_S = 14 * 86400  # longer than the source queue's: an SQS message keeps its first enqueue time
CONSUMED_DLQ_RETENTION_S = 7 * 86400  # the send DLQ: consumed at once; shorter than its parked queue's
VISIBILITY_PER_TIMEOUT = 6  # AWS: visibility >= 6 x the consumer's timeout (+ its batching window)
SQS_MIN_MAX_CONCURRENCY = 2  # the smallest ScalingConfig.MaximumConcurrency SQS accepts
BATCH_ITEM_FAILURES = ["ReportBatchItemFailures"]
OPERATOR_KEY_LENGTH = 48


@dataclass(frozen=True)
class StageLimits:
    """What a stage needs beyond .chalice/config.json."""

    api_rate_limit: int  # steady requests/s over the whole API
    api_burst_limit: int
    log_retention_days: int
    keep_data: bool  # table, queues and operator key survive deleting or replacing the stack


STAGE_LIMITS = {
    "dev": StageLimits(api_rate_limit=20, api_burst_limit=40, log_retention_days=14, keep_data=False),
    "prod": StageLimits(api_rate_limit=500, api_burst_limit=1000, log_retention_days=90, keep_data=True),
}


SEND_FUNCTION = "send"
LEASE_PER_TIMEOUT = 2  # the send lease is this many times the send function's timeout


def send_lease_s(timeout_s: int) -> int:
    """The deployed chunk lease: past the send function's timeout, so a live invocation keeps its chunk."""
    return LEASE_PER_TIMEOUT * timeout_s


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # chalice's: api_handler, or the decorated function's name
    timeout_s: int
    reserved_concurrency: int | None


@dataclass(frozen=True)
class SqsTrigger:
    function: str
    queue: str
    batching_window_s: int


@dataclass(frozen=True)
class StageSpec:
    """One stage as chalice would deploy it: names from its environment, functions from app.py."""

    app_name: str
    stage: str
    table_name: str
    intake_queue: str
    send_queue: str
    secrets_prefix: str
    operator_key_secret_id: str
    functions: tuple[FunctionSpec, ...]
    triggers: tuple[SqsTrigger, ...]
    limits: StageLimits
    webhook_queue: str = ""  # outcome events for the apps' webhooks (the webhook function's)

    def function(self, name: str) -> FunctionSpec:
        return next(f for f in self.functions if f.name == name)

    def function_name(self, name: str) -> str:
        """``chalice deploy``'s naming, kept so logs and alarms read the same however it was deployed."""
        return (
            f"{self.app_name}-{self.stage}" if name == API_HANDLER else f"{self.app_name}-{self.stage}-{name}"
        )

    def queues(self) -> dict[str, str]:
        """Logical ID -> queue name, for the queues and their dead-letter queues."""
        return {
            "IntakeQueue": self.intake_queue,
            "IntakeDeadLetterQueue": self.intake_queue + DLQ_SUFFIX,
            "SendQueue": self.send_queue,
            "SendDeadLetterQueue": self.send_queue + DLQ_SUFFIX,
            "SendParkedQueue": self.send_queue + PARKED_SUFFIX,
            **(
                {
                    "WebhookQueue": self.webhook_queue,
                    "WebhookDeadLetterQueue": self.webhook_queue + DLQ_SUFFIX,
                }
                if self.webhook_queue
                else {}
            ),
        }


def function_logical_id(name: str) -> str:
    """The logical ID chalice gives a function's resource (``send`` -> ``Send``)."""
    from chalice.utils import to_cfn_resource_name

    return "APIHandler" if name == API_HANDLER else str(to_cfn_resource_name(name))


def visibility_timeout_s(spec: StageSpec, queue: str) -> int:
    consumers = [t for t in spec.triggers if t.queue == queue]
    if not consumers:
        raise ValueError(f"no function consumes queue {queue!r}: app.py and .chalice/config.json disagree")
    return max(
        VISIBILITY_PER_TIMEOUT * spec.function(t.function).timeout_s + t.batching_window_s for t in consumers
    )


def merge_template(spec: StageSpec) -> dict[str, Any]:
    """The ``--merge-template`` file for this stage."""
    if not spec.operator_key_secret_id.startswith(spec.secrets_prefix):
        raise ValueError(
            "OPERATOR_KEY_SECRET_ID must be under SECRETS_PREFIX: the IAM policy is scoped to it"
        )
    keep = "Retain" if spec.limits.keep_data else "Delete"
    data_policy = {"DeletionPolicy": keep, "UpdateReplacePolicy": keep}
    resources: dict[str, Any] = {
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            **data_policy,
            "Properties": {
                **table_definition(spec.table_name),
                "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {"SSEEnabled": True},
                "DeletionProtectionEnabled": spec.limits.keep_data,
            },
        },
        "OperatorKeySecret": {
            "Type": "AWS::SecretsManager::Secret",
            **data_policy,
            "Properties": {
                "Name": spec.operator_key_secret_id,
                "Description": f"{spec.app_name} {spec.stage}: the operator key (Authorization: Bearer ...)",
                "GenerateSecretString": {
                    "SecretStringTemplate": "{}",
                    "GenerateStringKey": "operatorKey",
                    "PasswordLength": OPERATOR_KEY_LENGTH,
                    "ExcludePunctuation": True,
                },
            },
        },
        "RestAPI": {
            "Properties": {
                # API Gateway's own answers (no route, too large, throttled, function failed) in the
                # API's error shape: chalicelib/api/gateway.py, which the local stack answers too.
                "GatewayResponses": sam_gateway_responses(),
                "MethodSettings": [
                    {
                        "ResourcePath": "/*",
                        "HttpMethod": "*",
                        "ThrottlingRateLimit": spec.limits.api_rate_limit,
                        "ThrottlingBurstLimit": spec.limits.api_burst_limit,
                    }
                ],
            }
        },
    }
    outputs: dict[str, Any] = {
        "TableName": {"Value": {"Ref": "Table"}},
        "OperatorKeySecretArn": {"Value": {"Ref": "OperatorKeySecret"}},
        "SecretsPrefix": {"Value": spec.secrets_prefix},
    }

    queue_ids = {name: logical_id for logical_id, name in spec.queues().items()}
    for queue in (spec.intake_queue, spec.send_queue, *([spec.webhook_queue] if spec.webhook_queue else [])):
        queue_id, dlq_id = queue_ids[queue], queue_ids[queue + DLQ_SUFFIX]
        resources[dlq_id] = {
            "Type": "AWS::SQS::Queue",
            **data_policy,
            "Properties": {
                "QueueName": queue + DLQ_SUFFIX,
                "MessageRetentionPeriod": DLQ_RETENTION_S,
                "SqsManagedSseEnabled": True,
            },
        }
        if any(t.queue == queue + DLQ_SUFFIX for t in spec.triggers):
            # Consumed (the send DLQ: its records settled in the report), then parked for a redrive.
            parked_id = queue_ids[queue + PARKED_SUFFIX]
            resources[parked_id] = {
                "Type": "AWS::SQS::Queue",
                **data_policy,
                "Properties": {
                    "QueueName": queue + PARKED_SUFFIX,
                    "MessageRetentionPeriod": DLQ_RETENTION_S,
                    "SqsManagedSseEnabled": True,
                },
            }
            resources[dlq_id]["Properties"] |= {
                "MessageRetentionPeriod": CONSUMED_DLQ_RETENTION_S,
                "VisibilityTimeout": visibility_timeout_s(spec, queue + DLQ_SUFFIX),
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": [parked_id, "Arn"]},
                    "maxReceiveCount": MAX_RECEIVE_COUNT,
                },
            }
            outputs[f"{parked_id}Url"] = {"Value": {"Ref": parked_id}}
        resources[queue_id] = {
            "Type": "AWS::SQS::Queue",
            **data_policy,
            "Properties": {
                "QueueName": queue,
                "VisibilityTimeout": visibility_timeout_s(spec, queue),
                "MessageRetentionPeriod": QUEUE_RETENTION_S,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
                    "maxReceiveCount": MAX_RECEIVE_COUNT,
                },
            },
        }
        outputs[f"{queue_id}Url"] = {"Value": {"Ref": queue_id}}
        outputs[f"{dlq_id}Url"] = {"Value": {"Ref": dlq_id}}

    for fn in spec.functions:
        fn_id = function_logical_id(fn.name)
        log_group_id = f"{fn_id}LogGroup"
        resources[log_group_id] = {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "LogGroupName": f"/aws/lambda/{spec.function_name(fn.name)}",
                "RetentionInDays": spec.limits.log_retention_days,
            },
        }
        # The function logs to the group declared here (created first, with a retention), so its
        # role needs no logs:CreateLogGroup.
        resources[fn_id] = {
            "Properties": {
                "FunctionName": spec.function_name(fn.name),
                "LoggingConfig": {"LogGroup": {"Ref": log_group_id}},
            }
        }
        if fn.name == SEND_FUNCTION:
            # A chunk's lease must outlive the invocation holding it (the settings refuse less).
            resources[fn_id]["Properties"]["Environment"] = {
                "Variables": {
                    "SEND_LEASE_S": str(send_lease_s(fn.timeout_s)),
                    "SEND_FUNCTION_TIMEOUT_S": str(fn.timeout_s),
                }
            }

    for trigger in spec.triggers:
        fn = spec.function(trigger.function)
        fn_id = function_logical_id(fn.name)
        dead_letter = trigger.queue.endswith(DLQ_SUFFIX) and trigger.queue != spec.send_queue + DLQ_SUFFIX
        if trigger.queue not in queue_ids or dead_letter or trigger.queue.endswith(PARKED_SUFFIX):
            raise ValueError(
                f"{fn.name} consumes {trigger.queue!r}, "
                "which is not the intake, send, webhook or send DLQ queue"
            )
        event: dict[str, Any] = {
            "Queue": {"Fn::Sub": "${" + queue_ids[trigger.queue] + ".Arn}"},
            "FunctionResponseTypes": BATCH_ITEM_FAILURES,
        }
        if fn.reserved_concurrency is not None:
            # The SQS pollers do not see reserved concurrency: above it they are throttled and the
            # messages count a receive each time, towards the dead-letter queue. Cap them at it.
            if fn.reserved_concurrency < SQS_MIN_MAX_CONCURRENCY:
                raise ValueError(f"{fn.name}: reserved_concurrency must be >= {SQS_MIN_MAX_CONCURRENCY}")
            event["ScalingConfig"] = {"MaximumConcurrency": min(fn.reserved_concurrency, 1000)}
        resources[fn_id]["Properties"]["Events"] = {f"{fn_id}SqsEventSource": {"Properties": event}}

    return {"Resources": resources, "Outputs": outputs}


# ---- checks on the packaged (merged) template ----------------------------------------------------

_SUB_ARN = re.compile(r"^\$\{([A-Za-z0-9]+)\.Arn\}$")


def queue_reference(value: Any) -> str | None:
    """The logical ID a trigger's ``Queue`` refers to, or None when it is not one clean reference."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    fn, arg = next(iter(value.items()))
    if fn == "Fn::GetAtt" and isinstance(arg, list) and len(arg) == 2 and arg[1] == "Arn":
        return str(arg[0])
    if fn == "Fn::Sub" and isinstance(arg, str) and (m := _SUB_ARN.match(arg)):
        return m.group(1)
    return None


def sqs_events(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(function logical ID, event name, event properties) of every SQS trigger."""
    for fn_id, res in template["Resources"].items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        for name, event in res["Properties"].get("Events", {}).items():
            if event.get("Type") == "SQS":
                yield fn_id, name, event["Properties"]


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role logical ID, statement) of every inline policy in the template."""
    for role_id, res in template["Resources"].items():
        if res.get("Type") != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            statements = policy["PolicyDocument"]["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                yield role_id, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def check_template(template: dict[str, Any]) -> list[str]:
    """What is wrong with a packaged template that cfn-lint would not see; empty when nothing."""
    resources = template["Resources"]
    problems = [
        f"{rid} has no Type: the merge template overrides a resource chalice did not generate"
        for rid, res in resources.items()
        if "Type" not in res
    ]
    for fn_id, name, props in sqs_events(template):
        queue_id = queue_reference(props.get("Queue"))
        queue = resources.get(queue_id or "", {})
        if queue.get("Type") != "AWS::SQS::Queue":
            problems.append(
                f"{fn_id}.{name}: Queue {props.get('Queue')} is not one reference to a queue resource"
            )
            continue
        if props.get("FunctionResponseTypes") != BATCH_ITEM_FAILURES:
            problems.append(f"{fn_id}.{name}: FunctionResponseTypes is not {BATCH_ITEM_FAILURES}")
        timeout = resources[fn_id]["Properties"].get("Timeout", 3)
        visibility = queue["Properties"].get("VisibilityTimeout", 30)
        if visibility < VISIBILITY_PER_TIMEOUT * timeout:
            problems.append(f"{queue_id}: VisibilityTimeout {visibility} < 6 x {fn_id}'s timeout {timeout}")
        if "RedrivePolicy" not in queue["Properties"]:
            problems.append(f"{queue_id}: no RedrivePolicy (dead-letter queue)")
    for role_id, statement in policy_statements(template):
        for action in as_list(statement.get("Action", [])):
            if "*" in action:
                problems.append(f"{role_id}: wildcard action {action!r}")
        if statement.get("Effect") == "Allow" and "*" in as_list(statement.get("Resource")):
            problems.append(f"{role_id}: {statement.get('Sid', 'a statement')} allows Resource '*'")
    return problems
