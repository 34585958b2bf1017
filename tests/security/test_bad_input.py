"""The table-driven bad-input test (issue #5, item 5).

Over sixty malformed or unauthorised requests against one real server
process; each must get its 4xx status and error `code` (and the field named
in `details` where there is one), in the one error shape, with no stack trace
and the security headers, and together they must leave the journal exactly
as it was: same `journal_seq` and `chain_head` in `/v1/health`, same row
counts in every journaled table (read with the `sqlite3` shell).
"""

from __future__ import annotations

import http.client as httpclient
import json
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import serverkit as root_conftest
from securekit import Agent, Resp, request

ROOT = "0f1e2d3c4b5a69780f1e2d3c4b5a6978-root"
MAX_BODY = 131072  # STEMEDB_MAX_BODY_BYTES for this server; a batch may be 32x
JSON = "application/json"
ALICE = Agent()
NOW = int(time.time())
HASH = "ab" * 32


def _good(**changes: Any) -> dict[str, Any]:
    """An unsigned assertion with `changes` applied (None deletes a field)."""
    record: dict[str, Any] = {
        "subject": "bad/input",
        "predicate": "p",
        "object": "v",
        "confidence": 0.5,
        "signatures": [{"agent_id": ALICE.id, "signature": "00" * 64}],
    }
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def _signed_bad() -> dict[str, Any]:
    record = ALICE.assertion("bad/signed", timestamp=NOW)
    sig = record["signatures"][0]["signature"]
    record["signatures"][0]["signature"] = ("1" if sig[0] == "0" else "0") + sig[1:]
    return record


def _nested(depth: int) -> bytes:
    return b'{"subject": ' + b"[" * depth + b"]" * depth + b"}"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    target: str
    body: Any = None  # bytes as they are; anything else as JSON
    status: int = 400
    code: str = "invalid_request"
    field: str | None = None
    content_type: str | None = JSON
    key: str | None = ROOT


CASES = [
    # ---- not JSON, or JSON we refuse to guess about --------------------------------
    Case("empty body", "POST", "/v1/assert", b"", code="invalid_json"),
    Case("truncated", "POST", "/v1/assert", b'{"subject": "a"', code="invalid_json"),
    Case("trailing garbage", "POST", "/v1/assert", b"{} {}", code="invalid_json"),
    Case("single quotes", "POST", "/v1/assert", b"{'subject': 'a'}", code="invalid_json"),
    Case("NaN", "POST", "/v1/assert", b'{"confidence": NaN}', code="invalid_json"),
    Case("Infinity", "POST", "/v1/assert", b'{"confidence": Infinity}', code="invalid_json"),
    Case("-Infinity", "POST", "/v1/assert", b'{"confidence": -Infinity}', code="invalid_json"),
    Case("duplicate keys", "POST", "/v1/assert", b'{"a": 1, "a": 2}', code="invalid_json"),
    Case("nested 65 deep", "POST", "/v1/assert", _nested(65), code="invalid_json"),
    Case("nested 5000 deep", "POST", "/v1/assert", _nested(5000), code="invalid_json"),
    Case(
        "string over 64 KiB",
        "POST",
        "/v1/assert",
        json.dumps(_good(object="x" * 65537)).encode(),
        code="invalid_json",
    ),
    Case("invalid UTF-8", "POST", "/v1/assert", b'{"subject": "\xff\xfe"}', code="invalid_json"),
    Case("UTF-8 BOM", "POST", "/v1/assert", b"\xef\xbb\xbf{}", code="invalid_json"),
    Case(
        "5000-digit integer",
        "POST",
        "/v1/assert",
        b'{"confidence": ' + b"9" * 5000 + b"}",
        code="invalid_json",
    ),
    Case("array for one record", "POST", "/v1/assert", [_good()], field="body"),
    Case("string for one record", "POST", "/v1/assert", "assert this", field="body"),
    Case("null for one record", "POST", "/v1/assert", b"null", field="body"),
    # ---- assertion fields ------------------------------------------------------------
    Case("confidence > 1", "POST", "/v1/assert", _good(confidence=1.7), field="confidence"),
    Case("confidence < 0", "POST", "/v1/assert", _good(confidence=-0.1), field="confidence"),
    Case(
        "confidence 1e400",
        "POST",
        "/v1/assert",
        b'{"subject": "a", "predicate": "p", "object": "v", "confidence": 1e400}',
        field="confidence",
    ),
    Case("confidence as text", "POST", "/v1/assert", _good(confidence="high"), field="confidence"),
    Case("no subject", "POST", "/v1/assert", _good(subject=None), field="subject"),
    Case("no predicate", "POST", "/v1/assert", _good(predicate=None), field="predicate"),
    Case("no object", "POST", "/v1/assert", _good(object=None), field="object"),
    Case("no confidence", "POST", "/v1/assert", _good(confidence=None), field="confidence"),
    Case("empty subject", "POST", "/v1/assert", _good(subject=""), field="subject"),
    Case(
        "control char in subject",
        "POST",
        "/v1/assert",
        _good(subject="a/b\u0007c"),
        field="subject",
    ),
    Case("DEL in subject", "POST", "/v1/assert", _good(subject="a/\u007f"), field="subject"),
    Case("dot-dot segment", "POST", "/v1/assert", _good(subject="a/../etc"), field="subject"),
    Case("empty segment", "POST", "/v1/assert", _good(subject="a//b"), field="subject"),
    Case("subject over 512", "POST", "/v1/assert", _good(subject="a/" * 300), field="subject"),
    Case("bad scheme", "POST", "/v1/assert", _good(subject="1x://a"), field="subject"),
    Case(
        "lone surrogate",
        "POST",
        "/v1/assert",
        b'{"subject": "a", "predicate": "\\ud800", "object": "v", "confidence": 0.5}',
        field="predicate",
    ),
    Case("newline in predicate", "POST", "/v1/assert", _good(predicate="a\nb"), field="predicate"),
    Case("predicate over 256", "POST", "/v1/assert", _good(predicate="p" * 257), field="predicate"),
    Case(
        "unknown object type",
        "POST",
        "/v1/assert",
        _good(object={"type": "Blob", "value": 1}),
        field="object.type",
    ),
    Case(
        "NaN-ish number object",
        "POST",
        "/v1/assert",
        b'{"subject": "a", "predicate": "p", '
        b'"object": {"type": "Number", "value": 1e999}, "confidence": 0.5}',
        field="object.value",
    ),
    Case(
        "unknown source_class",
        "POST",
        "/v1/assert",
        _good(source_class="Divine"),
        field="source_class",
    ),
    Case("unknown lifecycle", "POST", "/v1/assert", _good(lifecycle="Done"), field="lifecycle"),
    Case(
        "parent_hash not hex", "POST", "/v1/assert", _good(parent_hash="xyz"), field="parent_hash"
    ),
    Case("epoch too short", "POST", "/v1/assert", _good(epoch="ab" * 31), field="epoch"),
    Case(
        "timestamp in the future",
        "POST",
        "/v1/assert",
        _good(timestamp=NOW + 100_000),
        field="timestamp",
    ),
    Case(
        "timestamp as text", "POST", "/v1/assert", _good(timestamp="yesterday"), field="timestamp"
    ),
    Case("source over 2048", "POST", "/v1/assert", _good(source="x:" + "a" * 2100), field="source"),
    Case("unknown field", "POST", "/v1/assert", _good(colour="red"), field="colour"),
    Case("kind of another endpoint", "POST", "/v1/assert", _good(kind="vote"), field="kind"),
    Case("no signatures", "POST", "/v1/assert", _good(signatures=None), field="signatures"),
    Case("empty signature list", "POST", "/v1/assert", _good(signatures=[]), field="signatures"),
    Case(
        "agent_id not hex",
        "POST",
        "/v1/assert",
        _good(signatures=[{"agent_id": "zz" * 32, "signature": "00" * 64}]),
        field="signatures.0.agent_id",
    ),
    Case(
        "signature too short",
        "POST",
        "/v1/assert",
        _good(signatures=[{"agent_id": ALICE.id, "signature": "00" * 10}]),
        field="signatures.0.signature",
    ),
    Case(
        "17 signatures",
        "POST",
        "/v1/assert",
        _good(signatures=[{"agent_id": Agent().id, "signature": "00" * 64} for _ in range(17)]),
        field="signatures",
    ),
    Case(
        "forged signature",
        "POST",
        "/v1/assert",
        _good(),
        code="invalid_signature",
        field="signatures.0.signature",
    ),
    Case(
        "flipped signature bit",
        "POST",
        "/v1/assert",
        _signed_bad(),
        code="invalid_signature",
        field="signatures.0.signature",
    ),
    # ---- other record kinds ----------------------------------------------------------
    Case(
        "vote weight 2",
        "POST",
        "/v1/vote",
        {"assertion_hash": HASH, "weight": 2, "signatures": _good()["signatures"]},
        field="weight",
    ),
    Case("vote without target", "POST", "/v1/vote", {"weight": 1}, field="assertion_hash"),
    Case(
        "vote on nothing",
        "POST",
        "/v1/vote",
        ALICE.record("vote", {"assertion_hash": HASH, "weight": 1}),
        status=404,
        code="not_found",
    ),
    Case("epoch name too long", "POST", "/v1/epoch", {"name": "e" * 129}, field="name"),
    Case(
        "alias of itself",
        "POST",
        "/v1/aliases",
        {"alias": "a/b", "canonical": "a/b"},
        field="canonical",
    ),
    # ---- batches -----------------------------------------------------------------------
    Case("batch is an object", "POST", "/v1/assert/batch", {"records": []}, field="(root)"),
    Case("batch over STEMEDB_BATCH_MAX", "POST", "/v1/assert/batch", [_good()] * 6, field="body"),
    Case(
        "atomic batch with a bad record",
        "POST",
        "/v1/assert/batch?atomic=true",
        [ALICE.assertion("bad/atomic", timestamp=NOW), _good(confidence=3)],
        code="",
    ),
    Case(
        "atomic NDJSON with a bad line",
        "POST",
        "/v1/assert/batch?atomic=true",
        json.dumps(ALICE.assertion("bad/nd", timestamp=NOW)).encode() + b"\n{oops\n",
        code="",
        content_type="application/x-ndjson",
    ),
    # ---- sizes and media types ---------------------------------------------------------
    Case(
        "body over the limit",
        "POST",
        "/v1/assert",
        b"{" + b" " * MAX_BODY + b"}",
        status=413,
        code="payload_too_large",
    ),
    Case(
        "batch over 32x the limit",
        "POST",
        "/v1/assert/batch",
        b"[" + b" " * (32 * MAX_BODY) + b"]",
        status=413,
        code="payload_too_large",
    ),
    Case(
        "text/plain body",
        "POST",
        "/v1/assert",
        b"subject=a",
        status=415,
        code="unsupported_media_type",
        content_type="text/plain",
    ),
    Case(
        "no content type",
        "POST",
        "/v1/assert",
        _good(),
        status=415,
        code="unsupported_media_type",
        content_type=None,
    ),
    Case(
        "NDJSON to a single-record route",
        "POST",
        "/v1/assert",
        b"{}\n",
        status=415,
        code="unsupported_media_type",
        content_type="application/x-ndjson",
    ),
    Case(
        "form-encoded",
        "POST",
        "/v1/query",
        b"subject=a",
        status=415,
        code="unsupported_media_type",
        content_type="application/x-www-form-urlencoded",
    ),
    # ---- query strings and paths -------------------------------------------------------
    Case("limit over 1000", "GET", "/v1/query?subject=a&limit=5000", field="limit"),
    Case("limit negative", "GET", "/v1/query?subject=a&limit=-1", field="limit"),
    Case("as_of not a number", "GET", "/v1/query?subject=a&as_of=soon", field="as_of"),
    Case("decay negative", "GET", "/v1/query?subject=a&decay=-3", field="decay"),
    Case("unknown query parameter", "GET", "/v1/query?subject=a&drop=table", field="drop"),
    Case("query body not an object", "POST", "/v1/query", [1, 2], field="(root)"),
    Case("skeptic without predicate", "GET", "/v1/skeptic?subject=a", field="predicate"),
    Case("feed wait over 30 s", "GET", "/v1/feed?wait=3600", field="wait"),
    Case("X-Agent-Id not hex", "GET", "/v1/query?subject=a", field="X-Agent-Id"),
    Case("NUL in a path parameter", "GET", "/v1/aliases/a%00b", field="path"),
    Case("newline in a path parameter", "GET", "/v1/aliases/a%0Ab", field="path"),
    Case("unknown assertion", "GET", f"/v1/assertions/{HASH}", status=404, code="not_found"),
    Case("unknown route", "GET", "/v1/../../etc/passwd", status=404, code="not_found"),
    Case("wrong method", "DELETE", "/v1/assert", status=405, code="method_not_allowed"),
    # ---- keys and roles ----------------------------------------------------------------
    Case("no API key", "POST", "/v1/assert", _good(), status=401, code="unauthorized", key=None),
    Case(
        "wrong API key",
        "POST",
        "/v1/assert",
        _good(),
        status=401,
        code="unauthorized",
        key="stemedb_000000000000_" + "0" * 64,
    ),
    Case(
        "reader writes",
        "POST",
        "/v1/assert",
        _good(),
        status=403,
        code="forbidden",
        field="X-API-Key",
        key="reader",
    ),
    Case(
        "writer mints keys",
        "POST",
        "/v1/admin/keys",
        {"role": "admin"},
        status=403,
        code="forbidden",
        field="X-API-Key",
        key="writer",
    ),
    Case("bad role for a new key", "POST", "/v1/admin/keys", {"role": "god"}, field="role"),
]


def _send(url: str, case: Case, key: str | None) -> Resp:
    headers = {} if case.content_type is None else {"Content-Type": case.content_type}
    if key is not None:
        headers["X-API-Key"] = key
    if case.name == "X-Agent-Id not hex":
        headers["X-Agent-Id"] = "me"
    body = case.body
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    parts = urllib.parse.urlsplit(url)
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest(case.method, case.target, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Resp(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


COUNTS_SQL = "SELECT " + ", ".join(
    f"(SELECT count(*) FROM {table})"
    for table in ("journal", "assertions", "votes", "epochs", "supersessions", "aliases")
)


@dataclass
class Table:
    """The one server the whole table runs against, and what it held before."""

    url: str
    db: Path
    keys: dict[str, str]
    health: tuple[int, str]
    counts: str


def _health(url: str) -> tuple[int, str]:
    body = request(url, "GET", "/v1/health").json
    return body["journal_seq"], body["chain_head"]


def _counts(db: Path) -> str:
    out = subprocess.run(
        ["sqlite3", "-readonly", str(db), COUNTS_SQL],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Table]:
    tmp = tmp_path_factory.mktemp("bad-input")
    env = root_conftest.server_env(
        tmp,
        {
            "STEMEDB_AUTH_ENABLED": "true",
            "STEMEDB_ROOT_API_KEY": ROOT,
            "STEMEDB_MAX_BODY_BYTES": str(MAX_BODY),
            "STEMEDB_BATCH_MAX": "5",
            "STEMEDB_RATE_LIMIT_READ": "0",
            "STEMEDB_RATE_LIMIT_WRITE": "0",
            "STEMEDB_RATE_LIMIT_ADMIN": "0",
        },
    )
    proc = root_conftest.ServerProcess(root_conftest.SERVE_ARGV, env, tmp, tmp / "server.log")
    try:
        assert proc.wait_ready(), proc.output
        admin = {"X-API-Key": ROOT}
        keys = {
            role: request(proc.url, "POST", "/v1/admin/keys", {"role": role}, admin).json["api_key"]
            for role in ("reader", "writer")
        }
        seeded = request(proc.url, "POST", "/v1/assert", ALICE.assertion("bad/seed"), admin)
        assert seeded.status == 201, seeded.body
        db = tmp / "db" / "stemedb.db"
        yield Table(proc.url, db, keys, _health(proc.url), _counts(db))
        assert "Traceback" not in proc.output
    finally:
        proc.kill()


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 50
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_refused_and_writes_nothing(table: Table, case: Case) -> None:
    key = table.keys.get(case.key, case.key) if case.key else None
    resp = _send(table.url, case, key)
    assert resp.status == case.status, resp.body[:300]
    assert resp.headers.get("x-content-type-options") == "nosniff"
    assert resp.headers.get("x-request-id")
    assert b"Traceback" not in resp.body and b'File "' not in resp.body
    body = resp.json
    if case.code == "":  # an atomic batch: the per-record results, nothing written
        assert body["created"] == 0 and body["rejected"] >= 1
        assert {r["status"] for r in body["results"]} <= {"rejected", "not_written"}
    else:
        assert set(body) == {"error"}
        error = body["error"]
        assert error["code"] == case.code, error
        assert isinstance(error["message"], str) and error["message"]
        if case.field is not None:
            fields = [detail["field"] for detail in error.get("details", [])]
            assert case.field in fields, error
    assert _health(table.url) == table.health


def test_the_journal_is_unchanged_after_the_whole_table(table: Table) -> None:
    assert _health(table.url) == table.health
    assert _counts(table.db) == table.counts
