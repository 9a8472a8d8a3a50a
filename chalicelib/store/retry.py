"""The one retry policy of every AWS call (DynamoDB, SQS, Secrets Manager; boto3 and the async client).

AWS throttles (``ProvisionedThroughputExceededException``, ``ThrottlingException``,
``RequestLimitExceeded``...), answers 500/503, and leaves ``UnprocessedKeys`` /
``UnprocessedItems``: each is retried after an exponential back-off with full jitter, as AWS
recommends ("Exponential Backoff And Jitter"), but never past the invocation's deadline: a
Lambda killed at its timeout loses more than a call that gives up a little early. The deadline
is the invocation's (``deadline_scope``, set by the handlers from Lambda's context and by the API
per request); a call outside any scope gets ``DEFAULT_BUDGET_S``. When the policy gives up, the
AWS error is raised as it came (``is_retryable`` says so): the API answers it with 503 and
``Retry-After``, a queue handler leaves the record to SQS.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections.abc import Iterator
from typing import Any

# Error codes that mean "try again later" (throttling, transient service errors), any service.
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "LimitExceededException",
    }
)
TRANSIENT_CODES = frozenset(
    {"InternalServerError", "InternalFailure", "ServiceUnavailable", "InternalError", "RequestTimeout"}
)
BASE_S = 0.025  # first back-off at most 25 ms (DynamoDB's SDKs start at 25-50 ms)
CAP_S = 2.0  # no single back-off longer than this
MAX_ATTEMPTS = 12  # a call is tried at most this many times, whatever the time left
DEFAULT_BUDGET_S = 8.0  # outside any deadline scope: how long one call may keep retrying
MARGIN_S = 1.0  # what is kept of the deadline for the caller to record the failure and answer
RETRY_AFTER_S = 2  # what a 503 tells the caller to wait

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("aws_retry_deadline", default=None)


@contextlib.contextmanager
def deadline_scope(remaining_s: float) -> Iterator[None]:
    """AWS calls made inside (and in tasks and ``asyncio.to_thread`` calls started inside) stop
    retrying ``MARGIN_S`` before ``remaining_s`` from now."""
    token = _deadline.set(time.monotonic() + remaining_s)
    try:
        yield
    finally:
        _deadline.reset(token)


def invocation(context: Any) -> contextlib.AbstractContextManager[None]:
    """The deadline scope of one Lambda invocation (``context``: Lambda's context object)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return contextlib.nullcontext()
    return deadline_scope(remaining() / 1000)


def remaining_s() -> float | None:
    """Seconds left of the current deadline scope (None outside any)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError or an aiodynamo error, if any."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return _AIODYNAMO_CODES.get(type(exc).__name__)


def is_retryable(exc: BaseException) -> bool:
    """An AWS answer that a later try may not get (throttling, 5xx, a dropped connection)."""
    code = error_code(exc)
    if code is not None:
        return code in THROTTLING_CODES or code in TRANSIENT_CODES
    return _is_connection_error(exc)


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


def backoff_s(attempt: int) -> float:
    """Full jitter: uniform in [0, min(CAP_S, BASE_S * 2^attempt)] (attempt counts from 1)."""
    return random.uniform(0, min(CAP_S, BASE_S * 2 ** min(attempt, 20)))  # noqa: S311 (jitter, not crypto)


def next_delay(attempt: int, started: float) -> float | None:
    """How long to wait before try ``attempt + 1``, or None: give up (attempts or time used up)."""
    if attempt >= MAX_ATTEMPTS:
        return None
    delay = backoff_s(attempt)
    now = time.monotonic()
    deadline = _deadline.get()
    limit = (deadline - MARGIN_S) if deadline is not None else started + DEFAULT_BUDGET_S
    if now + delay >= limit:
        return None
    return delay


def pause_for_unprocessed(round_: int, started: float) -> None:
    """Before sending a batch's ``UnprocessedKeys``/``UnprocessedItems`` again (round 1, 2...).
    Never gives up on its own: each batch call is itself retried and bounded by this policy."""
    delay = next_delay(round_, started)
    time.sleep(delay if delay is not None else 0.0)


# ---- boto3: botocore's "needs-retry" event, in place of its own retry handler ----------------


def install(client: Any) -> Any:
    """Replace botocore's retry handler of ``client`` with this policy; answers the client."""
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.unregister(f"needs-retry.{service}", unique_id=f"retry-config-{service}")
    client.meta.events.register(
        f"needs-retry.{service}", _botocore_needs_retry, unique_id=f"retry-policy-{service}"
    )
    return client


def _botocore_needs_retry(
    attempts: int, response: Any = None, caught_exception: BaseException | None = None, **kwargs: Any
) -> float | None:
    """botocore sleeps the seconds answered, then sends the request again; None: do not retry."""
    request_dict = kwargs.get("request_dict") or {}
    context = request_dict.get("context") if isinstance(request_dict, dict) else None
    if isinstance(context, dict):
        started = context.setdefault("retry_started", time.monotonic())
    else:
        started = time.monotonic()
    if caught_exception is not None:
        if not _is_connection_error(caught_exception):
            return None
    elif response is not None:
        http, parsed = response
        code = (parsed or {}).get("Error", {}).get("Code")
        status = getattr(http, "status_code", 200)
        if not (code in THROTTLING_CODES or code in TRANSIENT_CODES or status >= 500):
            return None
    else:
        return None
    return next_delay(attempts, started)


def _is_connection_error(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    if isinstance(exc, BotoConnectionError | HTTPClientError | ConnectionError | TimeoutError):
        return True
    return type(exc).__name__ in {"ClientConnectionError", "ServerDisconnectedError", "ClientOSError"}


# ---- the async client (aiodynamo) -------------------------------------------------------------

# aiodynamo raises its own exception types; the AWS code each stands for.
_AIODYNAMO_CODES = {
    "ProvisionedThroughputExceeded": "ProvisionedThroughputExceededException",
    "Throttled": "ThrottlingException",
    "RequestLimitExceeded": "RequestLimitExceeded",
    "ServiceUnavailable": "ServiceUnavailable",
    "InternalDynamoError": "InternalServerError",
}


def single_attempt() -> Any:
    """aiodynamo's throttle config trying each request once (its own default retries for up to a
    minute, 2^n s apart, blind to the invocation's time): this module retries instead."""
    from aiodynamo.models import StaticDelayRetry

    return StaticDelayRetry(time_limit_secs=0, delay=0)


async def call_async(send: Any, *args: Any, **kwargs: Any) -> Any:
    """``await send(*args, **kwargs)`` under this policy (the async DynamoDB client's calls)."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await send(*args, **kwargs)
        except Exception as exc:
            if not is_retryable(exc):
                raise
            delay = next_delay(attempt, started)
            if delay is None:
                raise
            await asyncio.sleep(delay)
