"""Operations endpoints, the documents, cross-cutting errors and headers, over HTTP:
health/ready/metrics (incl. the runbook's own checks), admin stats/verify,
/openapi.json (validated and walked), /docs, 404/405, X-Request-Id."""

from __future__ import annotations

import html.parser
import re
import time
from pathlib import Path
from typing import Any

import pytest
from e2ekit import Agent, Api, RunningServer, poll, unique
from serverkit import REQUIRED_METRICS

HEX64 = re.compile(r"[0-9a-f]{64}")
METRICS = REQUIRED_METRICS


@pytest.fixture(scope="module")
def sample(api: Api) -> dict[str, Any]:
    """One of each record so every path parameter has a real value."""
    agent = Agent()
    subject = f"{unique('o')}/ops"
    created = api.write("/v1/assert", agent.assertion(subject, "p", "x", 0.5))
    epoch = api.write("/v1/epoch", agent.record("epoch", name=unique("oe")))
    alias = f"{unique('oalias')}"
    api.write("/v1/aliases", agent.record("alias", alias=alias, canonical=subject))
    query = api.query(subject=subject, lens="recency")
    return {
        "agent": agent,
        "subject": subject,
        "hash": created["hash"],
        "seq": created["seq"],
        "epoch": epoch["hash"],
        "alias": alias,
        "query_id": query["query_id"],
    }


# ---- the runbook's own checks ----------------------------------------------------------


def test_runbook_validation_commands(api: Api) -> None:
    """`curl /v1/health`, `curl -X POST /v1/query {...}` and `curl /metrics | head -20`."""
    resp = api.get("/v1/health")
    assert resp.status == 200 and resp.header("Content-Type").startswith("application/json")
    body = resp.json
    assert body["status"] == "healthy" and body["version"] == "0.1.0"
    for key in ("uptime_seconds", "assertion_count", "journal_seq"):
        assert isinstance(body[key], int) and body[key] >= 0
    assert HEX64.fullmatch(body["chain_head"])
    resp = api.call("POST", "/v1/query", {"concept_path": "test/health", "lens": "recency"})
    assert resp.status == 200 and resp.json["results"] == []
    resp = api.get("/metrics")
    assert resp.status == 200 and resp.header("Content-Type").startswith("text/plain")
    head = resp.text.splitlines()[:20]
    assert any(line.startswith("# HELP stemedb_") for line in head)


def test_runbook_query_on_an_empty_database(server_factory: Any) -> None:
    fresh: RunningServer = server_factory()
    resp = fresh.api.call("POST", "/v1/query", {"concept_path": "test/health", "lens": "recency"})
    assert resp.status == 200, resp
    assert resp.json["results"] == [] and resp.json["lens"] == "recency"
    health = fresh.api.get_ok("/v1/health")
    assert health["assertion_count"] == 0 and health["journal_seq"] == 0
    fresh.proc.stop()


def test_health_counts_follow_writes(api: Api) -> None:
    before = api.get_ok("/v1/health")
    agent = Agent()
    created = api.write("/v1/assert", agent.assertion(f"{unique('o')}/h", "p", 1, 0.5))
    after = api.get_ok("/v1/health")
    assert after["assertion_count"] == before["assertion_count"] + 1
    assert after["journal_seq"] == created["seq"]
    assert after["chain_head"] != before["chain_head"]
    assert api.get_ok("/v1/admin/stats")["chain_head"] == after["chain_head"]


def test_head_answers_like_get_without_a_body(api: Api) -> None:
    resp = api.call("HEAD", "/v1/health")
    assert resp.status == 200 and resp.body == b""
    assert resp.header("X-Request-Id")


def test_ready(api: Api) -> None:
    resp = api.get("/v1/ready")
    assert resp.status == 200 and resp.json["ready"] is True
    assert resp.json.get("reason") is None


# ---- metrics -------------------------------------------------------------------------------


def test_metrics_use_route_templates_never_raw_paths(api: Api, sample: dict[str, Any]) -> None:
    assert api.get(f"/v1/assertions/{sample['hash']}").status == 200
    assert api.get("/v1/assertions/" + "0" * 64).status == 404
    assert api.get(f"/v1/trace/{sample['hash']}").status == 200
    assert api.get(f"/v1/aliases/{sample['alias']}").status == 200
    assert api.get("/v1/no/such/route/" + "1" * 64).status == 404
    text = api.get("/metrics").text
    for name in METRICS:
        assert f"# TYPE {name} " in text, name
    requests = [
        line for line in text.splitlines() if line.startswith("stemedb_http_requests_total{")
    ]
    routes = {m.group(1) for line in requests for m in [re.search(r'route="([^"]*)"', line)] if m}
    assert "/v1/assertions/{hash}" in routes
    assert "/v1/trace/{hash}" in routes
    assert any(r.startswith("/v1/aliases/{path") for r in routes)
    for line in text.splitlines():
        for label in re.findall(r'route="([^"]*)"', line):
            assert not HEX64.search(label), line
            assert sample["alias"] not in label, line
    found = [
        line
        for line in requests
        if 'route="/v1/assertions/{hash}"' in line
        and 'status="200"' in line
        and 'method="GET"' in line
    ]
    assert found and float(found[0].rsplit(" ", 1)[1]) >= 1
    assert re.search(r"^stemedb_journal_seq \d", text, re.M)
    assert re.search(r'^stemedb_queries_total\{[^}]*lens="recency"', text, re.M)


def test_metrics_count_ingested_and_rejected(api: Api) -> None:
    def value(text: str, prefix: str) -> float:
        total = 0.0
        for line in text.splitlines():
            if line.startswith(prefix):
                total += float(line.rsplit(" ", 1)[1])
        return total

    agent = Agent()
    before = api.get("/metrics").text
    api.write("/v1/assert", agent.assertion(f"{unique('o')}/m", "p", 1, 0.5))
    bad = dict(agent.assertion(f"{unique('o')}/m", "p", 1, 0.5), confidence=9)
    assert api.post("/v1/assert", bad).status == 400
    after = api.get("/metrics").text
    name = "stemedb_assertions_ingested_total"
    assert value(after, name) == value(before, name) + 1
    name = "stemedb_assertions_rejected_total"
    assert value(after, name) >= value(before, name) + 1


# ---- admin ---------------------------------------------------------------------------------


def test_admin_stats_and_verify(api: Api, sample: dict[str, Any]) -> None:
    stats = api.get_ok("/v1/admin/stats")
    for key in ("assertion_count", "journal_seq", "chain_head", "db_size_bytes", "queue_depth"):
        assert key in stats, key
    assert stats["journal_seq"] >= sample["seq"] and stats["db_size_bytes"] > 0
    report = api.ok("POST", "/v1/admin/verify")
    assert report["ok"] is True and report["checks"]
    assert all(check["ok"] for check in report["checks"])
    assert report["journal_seq"] >= sample["seq"]
    assert report["first_bad_seq"] is None


# ---- errors and headers that apply everywhere -------------------------------------------------


def test_unknown_route_is_404_in_the_error_shape(api: Api) -> None:
    for path in ("/v1/nope", "/", "/v2/assert", "/v1/assertions/a/b"):
        resp = api.get(path)
        assert resp.status == 404, (path, resp)
        assert resp.error["code"] == "not_found" and resp.error["message"]
        assert resp.header("Content-Type").startswith("application/json")


def test_request_id_is_echoed_or_generated_on_every_response(
    api: Api, sample: dict[str, Any]
) -> None:
    cases = [
        ("GET", "/v1/health", None, None, 200),
        ("GET", "/v1/nope", None, None, 404),
        ("GET", "/v1/assertions/" + "0" * 64, None, None, 404),
        ("DELETE", "/v1/assert", None, None, 405),
        ("POST", "/v1/assert", b"{bad", "application/json", 400),
        ("POST", "/v1/assert", b"x", "text/plain", 415),
        ("POST", "/v1/assert", b"[" + b" " * (1024 * 1024 + 10) + b"]", "application/json", 413),
        ("GET", "/metrics", None, None, 200),
        ("GET", "/openapi.json", None, None, 200),
        ("GET", "/v1/export", None, None, 200),
    ]
    for method, path, data, ctype, status in cases:
        mine = f"req-{unique()}"
        resp = api.call(method, path, data=data, content_type=ctype, headers={"X-Request-Id": mine})
        assert resp.status == status, (method, path, resp)
        assert resp.header("X-Request-Id") == mine, (method, path)
        resp = api.call(method, path, data=data, content_type=ctype)
        generated = resp.header("X-Request-Id")
        assert generated and len(generated) >= 16, (method, path)
    ids = {api.get("/v1/health").header("X-Request-Id") for _ in range(5)}
    assert len(ids) == 5
    # An id that is not safe to echo into headers and logs is replaced.
    resp = api.get("/v1/health", headers={"X-Request-Id": "x" * 500})
    assert resp.header("X-Request-Id") != "x" * 500 and resp.header("X-Request-Id")


def test_invalid_query_parameters_name_the_field(api: Api, sample: dict[str, Any]) -> None:
    resp = api.get(f"/v1/trace/{sample['hash']}", {"depth": -1})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "depth"
    resp = api.get("/v1/concepts", {"prefix": "a", "extra": 1})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "extra"
    resp = api.get("/v1/audit/queries", {"limit": 0})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "limit"


# ---- /openapi.json and /docs ------------------------------------------------------------------


def _concrete(path: str, sample: dict[str, Any]) -> str:
    values = {
        "hash": sample["hash"],
        "id": sample["epoch"],
        "path": sample["alias"],
        "query_id": sample["query_id"],
        "name": "docs.js",
        "key_id": "no-such-key",
    }
    return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), "x"), path)


def test_openapi_is_valid_3_1_and_every_documented_operation_exists(
    api: Api, sample: dict[str, Any]
) -> None:
    from openapi_spec_validator import validate

    poll(lambda: api.get(f"/v1/audit/query/{sample['query_id']}").status == 200)
    resp = api.get("/openapi.json")
    assert resp.status == 200 and resp.header("Content-Type").startswith("application/json")
    spec = resp.json
    assert spec["openapi"].startswith("3.1")
    validate(spec)
    methods = ("get", "post", "put", "patch", "delete")
    for path, item in spec["paths"].items():
        documented = {m.upper() for m in item if m in methods}
        url = _concrete(path, sample)
        allow = api.call("OPTIONS", url).header("Allow") or ""
        answered = {m.strip() for m in allow.split(",") if m.strip() and m.strip() != "OPTIONS"}
        if "GET" in documented:  # HEAD comes with GET (RFC 9110), documented or not
            answered.discard("HEAD")
        assert answered == documented, (path, answered, documented)
        for method in documented:
            body = None if method == "GET" else {}
            resp = api.call(method, url, body)
            assert resp.status != 405, (method, path, resp)
            if resp.status == 404:
                assert "no route" not in resp.error["message"], (method, path, resp)
                # A sample value may name no resource only where none can exist here:
                # DELETE (nothing to delete), docs pages, and quarantine decisions (this
                # server holds nothing in quarantine: its policy is off).
                assert (
                    method == "DELETE"
                    or path.endswith("{name}")
                    or path.startswith("/v1/admin/quarantine/")
                ), (method, path, resp)
            assert resp.status < 500, (method, path, resp)
        for method in set(m.upper() for m in methods) - documented:
            assert api.call(method, url).status == 405, (method, path)
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                assert operation["responses"], (path, operation)


def test_every_mounted_route_is_documented(api: Api, tmp_path: Path) -> None:
    """The route table of the very app the server builds, compared with /openapi.json."""
    import falcon.inspect

    from stemedb import __version__
    from stemedb.api.app import create_app
    from stemedb.config import Settings
    from stemedb.metrics import Metrics
    from stemedb.server import default_routes
    from stemedb.store import Store

    settings = Settings(db_dir=tmp_path, wal_dir=tmp_path / "wal")
    store = Store(settings)
    store.open()
    try:
        metrics = Metrics(__version__)
        app = create_app(settings, list(default_routes(settings, store, metrics)), metrics)
        mounted: set[tuple[str, str]] = set()
        for route in falcon.inspect.inspect_routes(app):
            template = re.sub(r"{(\w+)(?::[^}]*)?}", r"{\1}", route.path)
            methods = {m.method for m in route.methods if not m.internal}
            if "GET" in methods:  # HEAD comes with GET (RFC 9110), documented or not
                methods.discard("HEAD")
            mounted |= {(template, method) for method in methods}
    finally:
        store.close()
    spec = api.get_ok("/openapi.json")
    documented = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert mounted - documented == set()
    assert documented - mounted == set()


class _Assets(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)


def test_docs_page_uses_only_local_assets(api: Api) -> None:
    resp = api.get("/docs")
    assert resp.status == 200 and resp.header("Content-Type").startswith("text/html")
    parser = _Assets()
    parser.feed(resp.text)
    assert parser.refs
    for ref in parser.refs:
        assert not re.match(r"^([a-z]+:)?//", ref, re.I), ref
        assert ref.startswith("/"), ref
        assert api.get(ref).status == 200, ref
    assert "/openapi.json" in parser.refs
    for asset in ("/docs/docs.js", "/docs/docs.css"):
        text = api.get(asset).text
        assert not re.search(r"""(src|href)\s*=\s*["']https?://""", text), asset
        assert "cdn" not in text.lower(), asset
    csp = resp.header("Content-Security-Policy") or ""
    assert "default-src 'none'" in csp and "http" not in csp
    assert api.get("/docs/evil.js").status == 404


def test_server_time_fields_are_milliseconds(api: Api, sample: dict[str, Any]) -> None:
    got = api.get_ok(f"/v1/assertions/{sample['hash']}")
    assert abs(got["written_at"] - time.time() * 1000) < 3_600_000
    frame = api.get_ok("/v1/feed", {"after": sample["seq"] - 1, "limit": 1})["frames"][0]
    assert frame["written_ms"] == got["written_at"]


def test_no_cors_headers_by_default_and_security_headers_everywhere(api: Api) -> None:
    origin = {"Origin": "https://evil.example"}
    for resp in (
        api.get("/v1/health", headers=origin),
        api.get("/v1/nope", headers=origin),
        api.call(
            "OPTIONS", "/v1/query", headers={**origin, "Access-Control-Request-Method": "POST"}
        ),
    ):
        assert resp.header("Access-Control-Allow-Origin") is None
        assert resp.header("X-Content-Type-Options") == "nosniff"
        assert resp.header("X-Request-Id")
