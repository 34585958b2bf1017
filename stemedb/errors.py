"""Domain errors shared by every layer.

They carry the stable error `code` of the API's error table and field-level
`details`, but no HTTP status: the store and services know nothing of HTTP,
and `stemedb.api.errors` maps each class to its status in one place.
"""

from __future__ import annotations

from typing import Any


class StemeError(Exception):
    """Base of every error the product reports to a client."""

    code = "internal"

    def __init__(
        self,
        message: str,
        details: list[dict[str, Any]] | None = None,
        *,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class InvalidRequest(StemeError):
    """Malformed or invalid input; `details` name the fields."""

    code = "invalid_request"

    @classmethod
    def field(cls, field: str, problem: str, message: str | None = None) -> InvalidRequest:
        return cls(message or f"{field}: {problem}", [{"field": field, "problem": problem}])


class InvalidJson(StemeError):
    code = "invalid_json"


class InvalidSignature(StemeError):
    code = "invalid_signature"


class Unauthorized(StemeError):
    code = "unauthorized"


class Forbidden(StemeError):
    code = "forbidden"


class NotFound(StemeError):
    code = "not_found"


class PayloadTooLarge(StemeError):
    code = "payload_too_large"


class RateLimited(StemeError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class Unavailable(StemeError):
    """The writer is stopped, an I/O error happened, or the server is shutting down."""

    code = "unavailable"


class InsufficientStorage(StemeError):
    """The disk (or the database's page limit) is full; reads still work."""

    code = "insufficient_storage"
