"""Request ids, security headers, CORS, body limits, media types and request metrics."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import falcon
import falcon.testing
import pytest

from stemedb.api.routing import Route

Client = Callable[..., falcon.testing.TestClient]


def ok(req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
    resp.media = {"ok": True, **params}


class Spy:
    """A handler that records whether it ran and how much body it read."""

    def __init__(self) -> None:
        self.calls = 0
        self.read = 0

    def __call__(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.calls += 1
        self.read = len(req.bounded_stream.read())
        resp.media = {"read": self.read}


# ---- request id -----------------------------------------------------------------------


def test_request_id_is_echoed_when_sane(make_client: Client) -> None:
    client = make_client([Route("GET", "/v1/x", ok)])
    result = client.simulate_get("/v1/x", headers={"X-Request-Id": "abc-123_XYZ.~"})
    assert result.headers["X-Request-Id"] == "abc-123_XYZ.~"


@pytest.mark.parametrize("given", ["", "has space", "x" * 129, "tab\there", "é"])
def test_insane_request_id_is_replaced(make_client: Client, given: str) -> None:
    client = make_client([Route("GET", "/v1/x", ok)])
    result = client.simulate_get("/v1/x", headers={"X-Request-Id": given})
    generated = result.headers["X-Request-Id"]
    assert generated != given and re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]+", generated)


def test_request_id_is_on_errors_and_in_context(make_client: Client) -> None:
    seen: dict[str, str] = {}

    def handler(req: falcon.Request, resp: falcon.Response) -> None:
        seen["id"] = req.context.request_id
        raise falcon.HTTPBadRequest()

    client = make_client([Route("GET", "/v1/x", handler)])
    result = client.simulate_get("/v1/x", headers={"X-Request-Id": "r1"})
    assert result.status_code == 400 and result.headers["X-Request-Id"] == "r1" == seen["id"]
    assert client.simulate_get("/nope").headers["X-Request-Id"]


# ---- security headers -------------------------------------------------------------------


def test_security_headers_on_every_response(make_client: Client) -> None:
    client = make_client([Route("GET", "/v1/x", ok)])
    for result in (client.simulate_get("/v1/x"), client.simulate_get("/nope")):
        assert result.headers["X-Content-Type-Options"] == "nosniff"
        assert result.headers["X-Frame-Options"] == "DENY"
        assert result.headers["Referrer-Policy"] == "no-referrer"
        csp = result.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "http" not in csp  # self-hosted assets only


def test_no_store_only_for_the_api(make_client: Client) -> None:
    client = make_client([Route("GET", "/v1/x", ok)])
    assert client.simulate_get("/v1/x").headers["Cache-Control"] == "no-store"
    assert "Cache-Control" not in client.simulate_get("/docs").headers


# ---- CORS -------------------------------------------------------------------------------


ORIGIN = "https://app.example"


def test_cors_headers_only_for_allowed_origins(make_client: Client) -> None:
    client = make_client([Route("GET", "/v1/x", ok)], allowed_origins=(ORIGIN,))
    allowed = client.simulate_get("/v1/x", headers={"Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Request-Id" in allowed.headers["Access-Control-Expose-Headers"]
    other = client.simulate_get("/v1/x", headers={"Origin": "https://evil.example"})
    assert not any(h.lower().startswith("access-control-") for h in other.headers)


def test_cors_off_by_default(make_client: Client) -> None:
    result = make_client([Route("GET", "/v1/x", ok)]).simulate_get(
        "/v1/x", headers={"Origin": ORIGIN}
    )
    assert not any(h.lower().startswith("access-control-") for h in result.headers)


def test_preflight_is_answered_without_running_the_handler(make_client: Client) -> None:
    spy = Spy()
    client = make_client([Route("POST", "/v1/x", spy)], allowed_origins=(ORIGIN,))
    result = client.simulate_options(
        "/v1/x",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key",
        },
    )
    assert result.status_code == 204 and spy.calls == 0
    assert result.headers["Access-Control-Allow-Methods"] == "POST"
    assert result.headers["Access-Control-Allow-Headers"] == "content-type, x-api-key"
    assert result.headers["Access-Control-Allow-Origin"] == ORIGIN


# ---- body size and media type -------------------------------------------------------------


def test_content_length_over_limit_is_413_before_reading(make_client: Client) -> None:
    spy = Spy()
    client = make_client([Route("POST", "/v1/x", spy)], max_body_bytes=1024)
    result = client.simulate_post(
        "/v1/x", body=b"[" + b"1," * 600 + b"1]", content_type="application/json"
    )
    assert result.status_code == 413 and spy.calls == 0
    assert result.json["error"]["code"] == "payload_too_large"
    assert "1024" in result.json["error"]["message"]
    assert client.simulate_post("/v1/x", json=[1] * 10).status_code == 200


def test_batch_route_allows_32_times_the_limit(make_client: Client) -> None:
    batch, single = Spy(), Spy()
    client = make_client(
        [
            Route("POST", "/v1/batch", batch, body_limit_factor=32),
            Route("POST", "/v1/one", single),
        ],
        max_body_bytes=1024,
    )
    body = b"[" + b"1," * 5000 + b"1]"  # ~10 KiB
    assert client.simulate_post("/v1/batch", body=body, content_type="application/json").json == {
        "read": len(body)
    }
    assert (
        client.simulate_post("/v1/one", body=body, content_type="application/json").status_code
        == 413
    )
    too_big = b"[" + b"1," * 20000 + b"1]"  # ~40 KiB > 32 KiB
    assert (
        client.simulate_post("/v1/batch", body=too_big, content_type="application/json").status_code
        == 413
    )


def _chunked_env(body: bytes) -> dict[str, Any]:
    env = falcon.testing.create_environ(
        "/v1/x",
        method="POST",
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    env.pop("CONTENT_LENGTH", None)
    env["wsgi.input"] = io.BytesIO(body)
    return env


def test_body_without_content_length_is_read_through_a_bound(make_client: Client) -> None:
    spy = Spy()
    client = make_client([Route("POST", "/v1/x", spy)], max_body_bytes=1024)
    result = _call(client.app, _chunked_env(b"[1,2,3]"))
    assert result[0].startswith("200") and spy.read == 7
    result = _call(client.app, _chunked_env(b"1" * 5000))
    assert result[0].startswith("413")


def _call(app: Any, env: dict[str, Any]) -> tuple[str, bytes]:
    status: list[str] = []
    body = b"".join(app(env, lambda s, h, *exc: status.append(s)))
    return status[0], body


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON", 200),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/x-ndjson", 415),
    ],
)
def test_media_type_check(make_client: Client, content_type: str, status: int) -> None:
    client = make_client([Route("POST", "/v1/x", Spy())])
    result = client.simulate_post("/v1/x", body=b"[1]", content_type=content_type)
    assert result.status_code == status
    if status == 415:
        assert result.json["error"]["code"] == "unsupported_media_type"


def test_ndjson_accepted_where_the_route_says_so(make_client: Client) -> None:
    route = Route(
        "POST", "/v1/batch", Spy(), content_types=("application/json", "application/x-ndjson")
    )
    client = make_client([route])
    result = client.simulate_post("/v1/batch", body=b"1\n2\n", content_type="application/x-ndjson")
    assert result.status_code == 200


def test_post_without_body_needs_no_content_type(make_client: Client) -> None:
    assert make_client([Route("POST", "/v1/x", Spy())]).simulate_post("/v1/x").status_code == 200


# ---- request metrics ---------------------------------------------------------------------


def _sample(client: falcon.testing.TestClient, name: str, **labels: str) -> float | None:
    value = client.metrics.registry.get_sample_value(name, labels)  # type: ignore[attr-defined]
    return None if value is None else float(value)


def test_requests_are_counted_by_route_template_never_raw_path(make_client: Client) -> None:
    client = make_client([Route("GET", "/v1/assertions/{hash}", ok)])
    client.simulate_get("/v1/assertions/aa")
    client.simulate_get("/v1/assertions/bb")
    client.simulate_get("/v1/unknown/cc")
    client.simulate_post("/v1/assertions/aa")
    total = "stemedb_http_requests_total"
    assert _sample(client, total, method="GET", route="/v1/assertions/{hash}", status="200") == 2
    assert _sample(client, total, method="GET", route="unmatched", status="404") == 1
    assert _sample(client, total, method="POST", route="/v1/assertions/{hash}", status="405") == 1
    count = _sample(
        client,
        "stemedb_http_request_duration_seconds_count",
        method="GET",
        route="/v1/assertions/{hash}",
    )
    assert count == 2
    text = client.metrics.render().decode()  # type: ignore[attr-defined]
    assert "/v1/assertions/aa" not in text and "/v1/unknown/cc" not in text


def test_error_statuses_are_counted(make_client: Client) -> None:
    def boom(req: falcon.Request, resp: falcon.Response) -> None:
        raise RuntimeError("x")

    client = make_client([Route("GET", "/v1/x", boom)])
    client.simulate_get("/v1/x")
    assert (
        _sample(client, "stemedb_http_requests_total", method="GET", route="/v1/x", status="500")
        == 1
    )


def test_head_is_served_by_the_get_handler_without_body(make_client: Client) -> None:
    client = make_client([Route("GET", "/v1/x", ok)])
    result = client.simulate_head("/v1/x")
    assert result.status_code == 200 and result.content == b""
    assert result.headers["X-Request-Id"]


def test_date_header_matches_waitress_format_and_is_cached_per_second() -> None:
    from waitress.utilities import build_http_date

    from stemedb.api.middleware import http_date

    assert http_date(1_700_000_000.2) == build_http_date(1_700_000_000)
    assert http_date(1_700_000_000.9) is http_date(1_700_000_000.1)  # same second: cached text
    assert http_date(1_700_000_001.0) == build_http_date(1_700_000_001)
