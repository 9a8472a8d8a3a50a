"""Which AWS API actions each function performs, on which resources: the evidence for least privilege.

``install(path)`` hooks every botocore client created from then on (``before-parameter-build``,
botocore's own event) and every async DynamoDB client (``AsyncDynamo.before_call``, the same
hook the benchmark meters with), and appends one line per distinct call to ``path``::

    <function> <iam action> <resource ARN>

The function is the Lambda function's name (``AWS_LAMBDA_FUNCTION_NAME``, as Lambda sets it), or
whatever ``as_function`` says around a piece of work (the local poller plays the SQS event source
mapping, which acts with the function's role). The action is IAM's name for the call (a
``SendMessageBatch`` is authorized as ``sqs:SendMessage``; a ``TransactWriteItems`` as each of its
items' actions), the resource its ARN as IAM would check it. Only new (function, action, resource)
triples are written: recording a whole test run costs a set lookup per call.

Set ``AWS_ACTION_LOG=<file>`` and the local stack's processes record themselves (``maybe_install``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlparse

ENV = "AWS_ACTION_LOG"
ACCOUNT = os.environ.get("AWS_ACCOUNT_ID", "123456789012")  # moto's default account
SECRET_SUFFIX = "-AbCdEf"  # noqa: S105 (not a password) Secrets Manager appends 6 random characters to a secret's name in its ARN

_function: ContextVar[str | None] = ContextVar("aws_actions_function", default=None)
_lock = threading.Lock()
_seen: set[tuple[str, str, str]] = set()
_path: str | None = None
_unattributed = True  # record calls made outside any function (as "?")

# Operations IAM authorizes under another action's name.
SAME_AS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "dynamodb:TransactGetItems": "dynamodb:GetItem",
}
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


@contextlib.contextmanager
def as_function(name: str) -> Iterator[None]:
    """Calls made inside are recorded as this function's."""
    token = _function.set(name)
    try:
        yield
    finally:
        _function.reset(token)


def current_function() -> str | None:
    return _function.get() or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")


def arn(service: str, region: str, rest: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{rest}"


def _table(region: str, name: str, index: str | None = None) -> str:
    if name.startswith("arn:"):
        return name
    return arn("dynamodb", region, f"table/{name}" + (f"/index/{index}" if index else ""))


def _queue(region: str, url_or_name: str) -> str:
    name = urlparse(url_or_name).path.rsplit("/", 1)[-1] if "/" in url_or_name else url_or_name
    return arn("sqs", region, name)


def _secret(region: str, secret_id: str) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    return arn("secretsmanager", region, f"secret:{secret_id}{SECRET_SUFFIX}")


def actions_of(service: str, operation: str, params: dict[str, Any], region: str) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) pairs one API call is authorized as."""
    action = SAME_AS.get(f"{service}:{operation}", f"{service}:{operation}")
    if service == "dynamodb":
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(action, _table(region, t)) for t in params.get("RequestItems", {})]
        if operation in ("TransactWriteItems", "TransactGetItems"):
            out = []
            for item in params.get("TransactItems", []):
                for kind, body in item.items():
                    name = TRANSACT_ITEM_ACTIONS.get(kind, action)
                    out.append((name, _table(region, body["TableName"])))
            return out
        if "TableName" in params:
            return [(action, _table(region, params["TableName"], params.get("IndexName")))]
        return [(action, "*")]
    if service == "sqs":
        if "QueueUrl" in params:
            return [(action, _queue(region, params["QueueUrl"]))]
        if "QueueName" in params:
            return [(action, _queue(region, params["QueueName"]))]
        return [(action, "*")]
    if service == "secretsmanager":
        secret = params.get("SecretId") or params.get("Name")
        return [(action, _secret(region, secret) if secret else "*")]
    return [(action, "*")]


def record(service: str, operation: str, params: dict[str, Any], region: str) -> None:
    function = current_function()
    if function is None:
        if not _unattributed:
            return
        function = "?"
    for action, resource in actions_of(service, operation, params, region):
        key = (function, action, resource)
        if key in _seen or _path is None:
            continue
        with _lock:
            if key in _seen:
                continue
            _seen.add(key)
            with open(_path, "a", encoding="utf-8") as out:
                out.write(" ".join(key) + "\n")


def install(path: str, *, unattributed: bool = True) -> None:
    """Record from now on, into ``path`` (appended: several processes may share one file).
    ``unattributed=False``: only calls made inside ``as_function`` (a driver's own calls are not
    the functions')."""
    global _path, _unattributed
    _unattributed = unattributed
    if _path is not None:
        _path = path
        return
    _path = path
    from botocore.client import ClientCreator

    original = ClientCreator.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        region = client.meta.region_name or os.environ.get("AWS_REGION", "us-east-1")

        def hook(params: dict[str, Any], model: Any, **_kw: Any) -> None:
            service = model.service_model.signing_name or model.service_model.endpoint_prefix
            record(service, model.name, params, region)

        client.meta.events.register("before-parameter-build", hook)
        return client

    ClientCreator.create_client = create_client  # type: ignore[method-assign]

    with contextlib.suppress(ImportError):
        from chalicelib.store.dynamo_async import AsyncDynamo

        original_init = AsyncDynamo.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original_init(self, *args, **kwargs)
            region = self.settings.region

            def hook(action: str, payload: dict[str, Any], _response: Any) -> None:
                record("dynamodb", action, payload, region)

            self.before_call.append(hook)

        AsyncDynamo.__init__ = init  # type: ignore[method-assign]


def maybe_install() -> None:
    """Record when ``AWS_ACTION_LOG`` names a file (the local stack's processes call this first)."""
    if os.environ.get(ENV):
        install(os.environ[ENV])


def read(path: str) -> set[tuple[str, str, str]]:
    """The (function, action, resource) triples recorded in a file."""
    out = set()
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as lines:
        for line in lines:
            parts = line.split()
            if len(parts) == 3:
                out.add((parts[0], parts[1], parts[2]))
    return out
