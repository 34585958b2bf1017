"""Every error, from handlers, middleware and Falcon itself, leaves in one JSON shape."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import falcon
import falcon.testing
import pytest
from pydantic import BaseModel, Field

from stemedb import errors
from stemedb.api.errors import validation_details
from stemedb.api.routing import Route

Client = Callable[..., falcon.testing.TestClient]


def raising(exc: BaseException) -> Callable[[falcon.Request, falcon.Response], None]:
    def handler(req: falcon.Request, resp: falcon.Response) -> None:
        raise exc

    return handler


def assert_error_shape(body: Any, code: str) -> dict[str, Any]:
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "details"}
    return error


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (errors.InvalidRequest.field("confidence", "1.7 > 1"), 400, "invalid_request"),
        (errors.InvalidJson("bad"), 400, "invalid_json"),
        (errors.InvalidSignature("flipped bit"), 400, "invalid_signature"),
        (errors.Unauthorized("no key"), 401, "unauthorized"),
        (errors.Forbidden("reader"), 403, "forbidden"),
        (errors.NotFound("no such hash"), 404, "not_found"),
        (errors.PayloadTooLarge("big"), 413, "payload_too_large"),
        (errors.RateLimited("slow down", 0.2), 429, "rate_limited"),
        (errors.RateLimited("quota", 3600, code="quota_exhausted"), 429, "quota_exhausted"),
        (errors.Unavailable("writer stopped"), 503, "unavailable"),
        (errors.InsufficientStorage("disk full"), 507, "insufficient_storage"),
    ],
)
def test_domain_errors_map_to_status_and_code(
    make_client: Client, exc: errors.StemeError, status: int, code: str
) -> None:
    client = make_client([Route("GET", "/v1/x", raising(exc))])
    result = client.simulate_get("/v1/x")
    assert result.status_code == status
    error = assert_error_shape(result.json, code)
    assert error["message"] == exc.message
    assert result.headers["X-Request-Id"]


def test_invalid_request_details_name_the_field(make_client: Client) -> None:
    exc = errors.InvalidRequest.field("confidence", "1.7 > 1", "confidence must be <= 1")
    result = make_client([Route("GET", "/v1/x", raising(exc))]).simulate_get("/v1/x")
    assert result.json["error"]["details"] == [{"field": "confidence", "problem": "1.7 > 1"}]


def test_rate_limited_sets_retry_after_rounded_up(make_client: Client) -> None:
    client = make_client([Route("GET", "/v1/x", raising(errors.RateLimited("wait", 1.2)))])
    assert client.simulate_get("/v1/x").headers["Retry-After"] == "2"
    client = make_client([Route("GET", "/v1/x", raising(errors.RateLimited("wait", 0.01)))])
    assert client.simulate_get("/v1/x").headers["Retry-After"] == "1"


def test_unexpected_exception_is_500_without_leaking_and_logged_with_request_id(
    make_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client([Route("GET", "/v1/x", raising(KeyError("secret_column")))])
    with caplog.at_level(logging.ERROR, logger="stemedb.api"):
        result = client.simulate_get("/v1/x", headers={"X-Request-Id": "req-42"})
    assert result.status_code == 500
    assert assert_error_shape(result.json, "internal")["message"] == (
        "internal server error (request id req-42; the cause is in the server log)"
    )
    assert "secret_column" not in result.text and "Traceback" not in result.text
    record = next(r for r in caplog.records if r.name == "stemedb.api")
    assert "req-42" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_unknown_route_is_404_not_found(make_client: Client) -> None:
    result = make_client([]).simulate_get("/v1/nothing-here")
    assert result.status_code == 404
    assert "/v1/nothing-here" in assert_error_shape(result.json, "not_found")["message"]


def test_wrong_method_is_405_with_allow(make_client: Client) -> None:
    client = make_client([Route("GET", "/v1/x", lambda req, resp: None)])
    result = client.simulate_delete("/v1/x")
    assert result.status_code == 405
    assert_error_shape(result.json, "method_not_allowed")
    assert "GET" in result.headers["Allow"]


def test_falcon_http_errors_are_reshaped(make_client: Client) -> None:
    def handler(req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPBadRequest(description="limit must be a number")

    result = make_client([Route("GET", "/v1/x", handler)]).simulate_get("/v1/x")
    assert result.status_code == 400
    error = assert_error_shape(result.json, "invalid_request")
    assert error["message"] == "limit must be a number"


class Inner(BaseModel):
    confidence: float = Field(ge=0, le=1)


class Outer(BaseModel):
    items: list[Inner]


def test_pydantic_validation_error_from_a_handler_is_400_with_dotted_fields(
    make_client: Client,
) -> None:
    def handler(req: falcon.Request, resp: falcon.Response) -> None:
        Outer.model_validate({"items": [{"confidence": 0.5}, {"confidence": 1.7}]})

    result = make_client([Route("GET", "/v1/x", handler)]).simulate_get("/v1/x")
    assert result.status_code == 400
    error = assert_error_shape(result.json, "invalid_request")
    assert error["details"][0]["field"] == "items.1.confidence"
    assert "1" in error["details"][0]["problem"]
    assert error["message"].startswith("items.1.confidence:")


def test_validation_details_lists_every_problem() -> None:
    with pytest.raises(Exception) as info:
        Outer.model_validate({"items": [{"confidence": "x"}, {}]})
    details = validation_details(info.value)  # type: ignore[arg-type]
    assert [d["field"] for d in details] == ["items.0.confidence", "items.1.confidence"]
    assert all(d["problem"] for d in details)
