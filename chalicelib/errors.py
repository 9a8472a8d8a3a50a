"""One small exception tree for the whole service.

API errors carry their HTTP status and machine-readable code; their message
says what was wrong and how to fix it, and never contains secret material.
Send-path errors say whether a retry can help.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class ValidationFailed(ServiceError):
    status = 400
    code = "ValidationError"


class InvalidCredential(ServiceError):
    """An uploaded certificate or key was refused; ``code`` names the problem."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Unauthorized(ServiceError):
    status = 401
    code = "Unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "Forbidden"


class NotFound(ServiceError):
    status = 404
    code = "NotFound"


class Conflict(ServiceError):
    status = 409
    code = "Conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "PayloadTooLarge"


class NotConfigured(ServiceError):
    """The deployment lacks a setting the request needs (an operator's fix, not the caller's)."""

    status = 503
    code = "NotConfigured"


class TryLater(ServiceError):
    """AWS kept throttling (or failing) past the request's retry budget: nothing is wrong with the
    request, it can be sent again unchanged after ``Retry-After`` seconds."""

    status = 503
    code = "TryLater"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"the service's database is busy (AWS throttled this request); send it again unchanged "
            f"after {retry_after_s} s (Retry-After)"
        )
        self.retry_after_s = retry_after_s


EXCERPT_CHARS = 40


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A short, cut quotation of a caller's input for an error message: never the whole of it
    (a 250,000-character time zone must not come back in a 500 KB answer)."""
    text = value if isinstance(value, str) else type(value).__name__
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text)} characters)"
