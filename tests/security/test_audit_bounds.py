"""Item 9: readers cannot fill the disk through the query audit trail.

Each row is bounded (and says what it cut), growth is budgeted per client (its
API key) and in total per minute (dropped rows are counted and summarised),
and query parameters have length limits (400 naming the field).
"""

from __future__ import annotations

import time as wall
from collections.abc import Callable
from typing import Any

import pytest
from securekit import ROOT_KEY, SecureApp
from serverkit import truncate_wal

from stemedb.service import audit as audit_module
from stemedb.service.audit_bounds import LISTED_MAX, ROW_MAX_BYTES

LISTED = 1000
QUERIES = 200


class Clock:
    """The audit's wall clock, held still (a minute boundary must not reset budgets
    in the middle of a test); monotonic time runs as usual."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0 + 5

    def time(self) -> float:
        return self.now

    monotonic = staticmethod(wall.monotonic)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock()
    monkeypatch.setattr(audit_module, "time", frozen)
    return frozen


def _db_bytes(app: SecureApp) -> int:
    """The database's size once the WAL is folded in (the store's own file)."""
    assert truncate_wal(app.store.path)[0] == 0
    return int(app.store.db_size_bytes())


def _heavy_app(secure_app: Callable[..., SecureApp], **env: str) -> tuple[SecureApp, str]:
    app = secure_app(
        STEMEDB_AUTH_ENABLED="true",
        STEMEDB_ROOT_API_KEY=ROOT_KEY,
        STEMEDB_REQUIRE_SIGNATURES="false",
        STEMEDB_RATE_LIMIT_READ="0",
        STEMEDB_RATE_LIMIT_WRITE="0",
        **env,
    )
    records = [
        {"subject": "heavy/s", "predicate": f"p{n}", "object": n, "confidence": 0.5}
        for n in range(LISTED)
    ]
    resp = app.client.simulate_post(
        "/v1/assert/batch", json=records, headers={"X-API-Key": ROOT_KEY}
    )
    assert resp.status_code == 200 and resp.json["created"] == LISTED
    return app, app.new_key("reader")


def _list(app: SecureApp, key: str, **params: Any) -> Any:
    resp = app.client.simulate_get(
        "/v1/query",
        params={"subject": "heavy/s", "limit": LISTED, **params},
        headers={"X-API-Key": key},
    )
    assert resp.status_code == 200, resp.text
    return resp.json


def _audit(app: SecureApp, **params: Any) -> list[dict[str, Any]]:
    resp = app.client.simulate_get(
        "/v1/audit/queries", params={"limit": 1000, **params}, headers={"X-API-Key": ROOT_KEY}
    )
    assert resp.status_code == 200, resp.text
    queries: list[dict[str, Any]] = resp.json["queries"]
    return queries


def test_heavy_listings_by_a_read_only_key_grow_the_database_by_a_bounded_amount(
    secure_app: Callable[..., SecureApp], clock: Clock
) -> None:
    app, reader = _heavy_app(secure_app)
    _audit(app)
    before = _db_bytes(app)
    for _ in range(QUERIES):
        assert _list(app, reader)["count"] == LISTED
    entries = [e for e in _audit(app) if e["endpoint"] == "query"]
    grown = _db_bytes(app) - before
    # Unbounded, each row held 1,000 hashes (~67 KB): 200 queries wrote 13 MB. Now a row
    # holds 100 and the key's budget (512 KiB a minute) stops the rest.
    budget = app.settings.audit_bytes_per_client
    assert grown < budget + 512 * 1024, grown
    assert 0 < len(entries) < QUERIES
    dropped = app.metric("stemedb_audit_rows_dropped_total", reason="client_budget")
    assert dropped == QUERIES - len(entries)
    assert app.metric("stemedb_audit_bytes_total") <= budget
    assert app.metric("stemedb_audit_rows_truncated_total") == len(entries)
    # Every kept row is bounded and says what it cut.
    entry = entries[0]
    (listed,) = entry["results"]
    assert len(listed["listed"]) == LISTED_MAX and listed["listed_total"] == LISTED
    assert entry["truncated"]["listed"] == LISTED - LISTED_MAX
    assert entry["truncated"]["limits"]["listed"] == LISTED_MAX
    assert "_truncated" not in entry["params"]


def test_the_total_budget_binds_every_key_and_a_summary_says_what_was_dropped(
    secure_app: Callable[..., SecureApp], clock: Clock
) -> None:
    app, _ = _heavy_app(
        secure_app,
        STEMEDB_AUDIT_BYTES_PER_CLIENT="100000",
        STEMEDB_AUDIT_BYTES_TOTAL="150000",
    )
    keys = [app.new_key("reader") for _ in range(5)]  # fresh keys are free: still bounded
    for key in keys:
        for _ in range(20):
            _list(app, key)
    kept = [e for e in _audit(app) if e["endpoint"] == "query"]
    assert app.metric("stemedb_audit_bytes_total") <= 150000
    assert app.metric("stemedb_audit_rows_total") == len(kept)
    assert app.metric("stemedb_audit_rows_dropped_total", reason="total_budget") > 0
    assert app.metric("stemedb_audit_rows_dropped_total", reason="client_budget") > 0
    # The minute's summary row is written once the next minute starts.
    clock.now += 60
    summaries = [e for e in _audit(app) if e["endpoint"] == "audit_summary"]
    assert len(summaries) == 1
    (summary,) = summaries[0]["results"]
    assert summary["dropped"] == 100 - len(kept)
    assert set(summary["reasons"]) == {"client_budget", "total_budget"}
    assert summary["endpoints"] == {"query": 100 - len(kept)}
    assert all(c["client"].startswith("key:") for c in summary["clients"])


def test_long_parameters_are_cut_in_the_row_and_the_row_stays_under_its_limit(
    secure_app: Callable[..., SecureApp],
) -> None:
    app, reader = _heavy_app(secure_app)
    cursor_like = "a" * 3000  # accepted by the model (<= 4096), not worth keeping whole
    resp = app.client.simulate_get(
        "/v1/query",
        params={"subject": "heavy/s", "limit": 5, "cursor": cursor_like},
        headers={"X-API-Key": reader},
    )
    assert resp.status_code == 400  # not a cursor of ours: nothing audited
    assert app.metric("stemedb_audit_rows_total") == 0
    body = _list(app, reader, lens="confidence")
    assert len(body["results"]) == LISTED  # one group per predicate
    (entry,) = [e for e in _audit(app) if e["endpoint"] == "query"]
    assert entry["truncated"]["groups"] == LISTED - 8
    assert len(entry["results"]) == 8
    assert len(str(entry["params"])) + len(str(entry["results"])) < ROW_MAX_BYTES * 2


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/query", {"subject": "a/" + "b" * 2000}, "subject"),
        ("/v1/query", {"subject": "a", "predicate": "p" * 300}, "predicate"),
        ("/v1/query", {"subject": "a", "source_class": "x," * 200}, "source_class"),
        ("/v1/query", {"subject": "a", "lifecycle": "any," * 100}, "lifecycle"),
        ("/v1/query", {"subject": "a", "lens": "l" * 100}, "lens"),
        ("/v1/skeptic", {"subject": "a/" + "b" * 2000, "predicate": "p"}, "subject"),
        ("/v1/layered", {"subject": "a", "predicate": "p", "decay": "9" * 100}, "decay"),
        ("/v1/concepts", {"prefix": "a/" * 600}, "prefix"),
        ("/v1/feed", {"kinds": "assertion," * 40}, "kinds"),
        ("/v1/export", {"kinds": "assertion," * 40}, "kinds"),
    ],
)
def test_query_parameters_have_length_limits(
    secure_app: Callable[..., SecureApp], path: str, params: dict[str, str], field: str
) -> None:
    app = secure_app(STEMEDB_REQUIRE_SIGNATURES="false")
    resp = app.client.simulate_get(path, params=params)
    assert resp.status_code == 400, resp.text
    error = resp.json["error"]
    assert error["code"] == "invalid_request"
    assert error["details"][0]["field"] == field
    assert "at most" in error["details"][0]["problem"]
    assert app.metric("stemedb_audit_rows_total") == 0
