"""The one exception family the client raises.

Every failure a caller can act on is an `ApiError`: an HTTP error answer
(with the server's stable `code`, field `details` and the `request_id` to
grep the server log for), or `ConnectionFailed` when no answer came at all.
Catching `ApiError` is therefore enough for "the call did not succeed".
"""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """An error answer from the server (see the error table in docs/api.md)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
        *,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        where = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.status} {self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )

    @classmethod
    def from_response(
        cls, status: int, raw: bytes, request_id: str | None, retry_after: str | None
    ) -> ApiError:
        """Parse the `{"error": {code, message, details}}` shape; tolerate anything else
        (a proxy's HTML 502 page, an empty body) without losing the status."""
        text = raw.decode("utf-8", errors="replace")
        body: Any = None
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            code = error["code"]
            message = str(error.get("message") or code)
            details = error.get("details")
            details = details if isinstance(details, list) else []
        else:
            code = f"http_{status}"
            message = text.strip()[:500] or f"HTTP {status} with an empty body"
            details = []
        return cls(
            status,
            code,
            message,
            details,
            request_id,
            retry_after=_seconds(retry_after),
            body=body if body is not None else text,
        )


class ConnectionFailed(ApiError):
    """No HTTP answer: refused, reset, timed out, DNS failure. `status` is 0.

    For a write that is not idempotent (an unsigned record) the message says
    that the write may or may not have been applied: the client cannot know.
    """

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(0, "connection_failed", message, [], request_id)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: rare from us, and the backoff covers it
