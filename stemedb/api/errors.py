"""One error shape for every response: ``{"error": {"code", "message", "details"?}}``.

Domain errors (`stemedb.errors`) carry a code but no status; this module is
the single place that maps them to HTTP, and the single serializer that
renders Falcon's own errors (404, 405, 413, ...) in the same shape, so a
client never has to parse two formats.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import falcon
import pydantic
from pydantic import BaseModel

from stemedb import errors

log = logging.getLogger("stemedb.api")

# Most specific first: the first isinstance match wins.
STATUS_BY_ERROR: tuple[tuple[type[errors.StemeError], int], ...] = (
    (errors.InvalidRequest, 400),
    (errors.InvalidJson, 400),
    (errors.InvalidSignature, 400),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.PayloadTooLarge, 413),
    (errors.RateLimited, 429),
    (errors.Unavailable, 503),
    (errors.InsufficientStorage, 507),
)

# Codes for Falcon's own errors, which know only their status.
CODE_BY_STATUS: dict[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
    507: "insufficient_storage",
}


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx response."""

    error: ErrorBody


class ApiError(falcon.HTTPError):
    """An HTTPError that already knows its error code and details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, title=code, description=message, headers=headers)
        self.error_code = code  # not `code`: HTTPError already has a numeric one
        self.message = message
        self.details = details or []


def status_for(exc: errors.StemeError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def from_domain(exc: errors.StemeError) -> ApiError:
    """The HTTP form of a domain error (status, code, details, Retry-After)."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if status == 500:
        # A StemeError with no mapped class is still a bug on our side.
        return ApiError(500, "internal", "internal server error")
    return ApiError(status, exc.code, exc.message, exc.details, headers or None)


def validation_details(exc: pydantic.ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``[{"field": "a.b.0", "problem": "..."}]`` (dotted location)."""
    details = []
    for err in exc.errors(include_url=False, include_context=False):
        loc = ".".join(str(part) for part in err["loc"]) or "(body)"
        details.append({"field": loc, "problem": err["msg"]})
    return details


def invalid_request_from(exc: pydantic.ValidationError) -> errors.InvalidRequest:
    """An InvalidRequest naming the first bad field; all of them are in details."""
    details = validation_details(exc)
    first = details[0] if details else {"field": "(body)", "problem": "invalid"}
    message = f"{first['field']}: {first['problem']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return errors.InvalidRequest(message, list(details))


def _message_for(req: falcon.Request, exc: falcon.HTTPError) -> str:
    if isinstance(exc, falcon.HTTPRouteNotFound) or exc.status_code == 404:
        return exc.description or f"no route matches {req.method} {req.path[:200]}"
    if exc.status_code == 405:
        allowed = dict(exc.headers or {}).get("Allow", "")
        return f"{req.method} is not allowed on this route (allowed: {allowed})"
    if isinstance(exc, falcon.MediaMalformedError):
        return "request body is not valid JSON"
    if exc.status_code == 500:  # the id finds the logged cause (never leaked here)
        request_id = getattr(req.context, "request_id", None) or "-"
        return f"internal server error (request id {request_id}; the cause is in the server log)"
    return exc.description or str(exc.title or exc.status)


def code_for(exc: falcon.HTTPError) -> str:
    if isinstance(exc, ApiError):
        return exc.error_code
    if isinstance(exc, falcon.MediaMalformedError | falcon.MediaNotFoundError):
        return "invalid_json"
    return CODE_BY_STATUS.get(exc.status_code, f"http_{exc.status_code}")


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Falcon's error serializer: every HTTPError leaves in our one shape, as JSON."""
    body: dict[str, Any] = {"code": code_for(exc), "message": _message_for(req, exc)}
    details = exc.details if isinstance(exc, ApiError) else []
    if details:
        body["details"] = details
    resp.content_type = falcon.MEDIA_JSON
    resp.media = {"error": body}


def handle_domain_error(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    assert isinstance(exc, errors.StemeError)
    api_error = from_domain(exc)
    if api_error.status_code == 500:
        _log_internal(req, exc)
    raise api_error


def handle_validation_error(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    assert isinstance(exc, pydantic.ValidationError)
    raise from_domain(invalid_request_from(exc))


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    """Anything else is a bug: traceback to the log with the request id, a bare 500 out."""
    _log_internal(req, exc)
    raise ApiError(500, "internal", "internal server error")


def _log_internal(req: falcon.Request, exc: BaseException) -> None:
    request_id = getattr(req.context, "request_id", "-")
    log.error(
        "internal error on %s %s (request id %s)",
        req.method,
        req.path,
        request_id,
        exc_info=exc,
        extra={"request_id": request_id},
    )


def install(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    """Register the serializer and handlers (more specific classes win in Falcon)."""
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(errors.StemeError, handle_domain_error)
    app.add_error_handler(pydantic.ValidationError, handle_validation_error)
