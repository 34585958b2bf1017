"""Issue 14 item 1 end to end: a signed record cannot be re-minted without its
signers' keys (data-model.md §7), on a real server.

* a signature entry is exactly {agent_id, signature}: an entry `timestamp`
  (or any other key) is a 400 naming the field, and nothing is written;
* the same signed content is the same record whatever signatures it carries
  (re-ordered, a co-signer stripped, another valid nonce): `exists` with the
  stored id and seq, for every record kind, and what lenses count is unchanged;
* records stored before v0.2 (entries with unsigned timestamps) are found too,
  after the start-up backfill of their digests;
* an internal error in the writer is a 500 with the request id, never the
  client's `invalid_request`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest
from identitykit import (
    Signer,
    T,
    frame_of,
    old_style,
    renonced,
    sign_by,
    unsigned_of_every_kind,
)
from securekit import Resp

from stemedb.config import Settings
from stemedb.store import PendingRecord, Store
from stemedb.store.schema import connect

ENDPOINTS = {
    "assertion": "/v1/assert",
    "vote": "/v1/vote",
    "epoch": "/v1/epoch",
    "supersession": "/v1/supersede",
    "alias": "/v1/aliases",
    "outcome": "/v1/outcome",
}
LIMITS_OFF = {"STEMEDB_RATE_LIMIT_WRITE": "0", "STEMEDB_RATE_LIMIT_READ": "0"}

Http = Callable[..., Resp]


def _state(http: Http, url: str) -> tuple[int, str]:
    health = http(url, "GET", "/v1/health").json
    return health["journal_seq"], health["chain_head"]


def _skeptic(http: Http, url: str, subject: str) -> Any:
    answer = http(url, "GET", f"/v1/skeptic?subject={subject}&predicate=p").json
    return answer["conflict_score"], [
        (c["object"], c["share"], c["assertion_count"]) for c in answer["claims"]
    ]


def _claim(subject: str, value: str, signers: list[Signer]) -> dict[str, Any]:
    unsigned = {"subject": subject, "predicate": "p", "object": value, "confidence": 0.9}
    return sign_by("assertion", {**unsigned, "source": "pubmed://1", "timestamp": T}, signers)


def _variants(record: dict[str, Any], signers: list[Signer]) -> list[dict[str, Any]]:
    """Every other signature list an attacker (or a re-signing signer) could send."""
    out = [renonced(record, signers[0])]
    entries = record["signatures"]
    if len(entries) > 1:
        out += [
            {**record, "signatures": entries[::-1]},
            {**record, "signatures": entries[:1]},
            {**record, "signatures": entries[1:]},
        ]
    return out


def _every_kind(
    tag: str, a: Signer, b: Signer, judge: Signer, *, old: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    """A co-signed assertion and its replacement (both by a and b), then one record
    of every other kind: co-signed where the kind allows it, else signed by a.
    References use the ids the assertions get as stored (`old`: pre-v0.2 form)."""
    target = _claim(f"replay/{tag}/target", "x", [a, b])
    other = _claim(f"replay/{tag}/other", "y", [a, b])
    records: list[tuple[str, dict[str, Any]]] = [("assertion", target), ("assertion", other)]
    target_id, other_id = (frame_of(old_style(r) if old else r)[0].hex() for r in (target, other))
    for kind, unsigned in unsigned_of_every_kind(target_id, other_id, None, judge.id, tag).values():
        signers = [a] if kind in ("vote", "outcome") else [a, b]
        records.append((kind, sign_by(kind, unsigned, signers)))
    return records


@pytest.fixture
def server(run_server_process: Callable[..., Any]) -> Any:
    return run_server_process(LIMITS_OFF)


# ---- entry timestamps are refused ---------------------------------------------------------


def test_an_entry_timestamp_is_refused_naming_the_field_for_every_kind(
    server: Any, http: Http
) -> None:
    a, b = Signer(), Signer()
    records = _every_kind("ts", a, b, Signer())
    for kind, record in records[:2]:
        assert http(server.url, "POST", ENDPOINTS[kind], record).status == 201
    before = _state(http, server.url)
    for kind, record in records:
        for entry_ts in (record["timestamp"], record["timestamp"] + 1, 0):
            replay = old_style(record, entry_ts)  # someone else's record, entries re-timed
            resp = http(server.url, "POST", ENDPOINTS[kind], replay)
            assert resp.status == 400, (kind, resp.body[:200])
            assert resp.error["code"] == "invalid_request"
            fields = [d["field"] for d in resp.error["details"]]
            assert fields[0] == "signatures.0.timestamp", (kind, fields)
            assert "exactly {agent_id, signature}" in resp.error["details"][0]["problem"]
        extra = {**record, "signatures": [{**record["signatures"][0], "nonce": 1}]}
        resp = http(server.url, "POST", ENDPOINTS[kind], extra)
        assert (resp.status, resp.error["details"][0]["field"]) == (400, "signatures.0.nonce")
    olds = [old_style(r) for _, r in records]
    batch = http(server.url, "POST", "/v1/assert/batch", olds)
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in olds)
    ndjson = http(
        server.url, "POST", "/v1/assert/batch", lines, {"Content-Type": "application/x-ndjson"}
    )
    for resp in (batch, ndjson):
        assert resp.status == 200, resp.body[:300]
        assert len(resp.json["results"]) == len(records)
        for item in resp.json["results"]:
            assert item["status"] == "rejected"
            assert item["error"]["details"][0]["field"] == "signatures.0.timestamp"
    assert _state(http, server.url) == before


# ---- the same signed content is the same record --------------------------------------------


def test_stripping_a_cosigner_reordering_or_renoncing_is_the_stored_claim(
    server: Any, http: Http
) -> None:
    a, b, c = Signer(), Signer(), Signer()
    subject = "replay/skeptic"
    cosigned = _claim(subject, "yes", [a, b])
    first = http(server.url, "POST", "/v1/assert", cosigned)
    assert first.status == 201
    assert http(server.url, "POST", "/v1/assert", _claim(subject, "no", [c])).status == 201
    skeptic = _skeptic(http, server.url, subject)
    assert sorted(share for _, share, _ in skeptic[1]) == [0.5, 0.5]
    before = _state(http, server.url)
    for variant in _variants(cosigned, [a, b]):
        resp = http(server.url, "POST", "/v1/assert", variant)
        assert resp.status == 200, resp.body[:300]
        assert resp.json == {**first.json, "status": "exists"}  # the STORED id and seq
    assert _state(http, server.url) == before
    assert _skeptic(http, server.url, subject) == skeptic


def test_every_kind_with_other_signatures_is_the_stored_record(server: Any, http: Http) -> None:
    a, b = Signer(), Signer()
    records = _every_kind("kinds", a, b, Signer())
    stored = []
    for kind, record in records:
        resp = http(server.url, "POST", ENDPOINTS[kind], record)
        assert resp.status == 201, (kind, resp.body[:300])
        stored.append(resp.json)
    before = _state(http, server.url)
    for (kind, record), first in zip(records, stored, strict=True):
        variants = _variants(record, [a, b])
        assert variants, kind
        for variant in variants:
            resp = http(server.url, "POST", ENDPOINTS[kind], variant)
            assert resp.status == 200, (kind, resp.body[:300])
            assert resp.json == {**first, "status": "exists"}, kind
        batch = http(server.url, "POST", "/v1/assert/batch", variants)
        assert [(r["status"], r["hash"], r["seq"]) for r in batch.json["results"]] == [
            ("exists", first["hash"], first["seq"])
        ] * len(variants), kind
    assert _state(http, server.url) == before


def test_two_records_with_one_digest_in_one_batch(server: Any, http: Http) -> None:
    a, b, c = Signer(), Signer(), Signer()
    full = _claim("replay/batch", "v", [a, b, c])
    items = [full, {**full, "signatures": full["signatures"][1:]}, renonced(full, b)]
    for atomic in ("false", "true"):
        if atomic == "true":
            full = _claim("replay/batch-atomic", "v", [a, b, c])
            items = [full, {**full, "signatures": full["signatures"][:2][::-1]}]
        resp = http(server.url, "POST", f"/v1/assert/batch?atomic={atomic}", items)
        assert resp.status == 200, resp.body[:300]
        results = resp.json["results"]
        assert results[0]["status"] == "created"
        assert {(r["status"], r["hash"], r["seq"]) for r in results[1:]} == {
            ("exists", results[0]["hash"], results[0]["seq"])
        }
        assert (resp.json["created"], resp.json["exists"]) == (1, len(items) - 1)


# ---- records stored before v0.2 ------------------------------------------------------------


def _pre_v0_2_database(directory: Path, records: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Journal `records` as a pre-v0.2 server did (entries with unsigned timestamps),
    then put the file in the state migration 0003 leaves an old database in."""
    directory.mkdir(parents=True, exist_ok=True)
    store = Store(Settings(db_dir=directory)).open()
    try:
        pending = []
        for kind, record in records:
            old = old_style(record)
            frame_hash, body = frame_of(old)
            pending.append(PendingRecord(kind, frame_hash, body, old, int(time.time() * 1000)))
        outcomes = store.write(pending)
        assert [o.status for o in outcomes] == ["created"] * len(records)
    finally:
        store.close()
    conn = connect(directory / "stemedb.db")
    with conn:
        conn.execute("DELETE FROM record_digests")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('record_digests_backfill', -1)")
    conn.close()
    return outcomes


def test_records_stored_before_v0_2_are_the_same_records(
    tmp_path: Path, run_server_process: Callable[..., Any], http: Http
) -> None:
    a, b, c = Signer(), Signer(), Signer()
    records = _every_kind("old", a, b, Signer(), old=True)
    subject = "replay/old/skeptic"
    records += [("assertion", _claim(subject, v, s)) for v, s in (("yes", [a, b]), ("no", [c]))]
    stored = _pre_v0_2_database(tmp_path / "db", records)
    server = run_server_process(LIMITS_OFF)
    assert "backfilled" in server.output
    before = _state(http, server.url)
    skeptic = _skeptic(http, server.url, subject)
    assert sorted(share for _, share, _ in skeptic[1]) == [0.5, 0.5]
    for (kind, record), old in zip(records, stored, strict=True):
        want = {"hash": old.hash.hex(), "seq": old.seq, "status": "exists"}
        resp = http(server.url, "POST", ENDPOINTS[kind], record)  # the v0.2 form
        assert (resp.status, resp.json) == (200, want), (kind, resp.body[:300])
        for variant in _variants(record, [a, b]):
            resp = http(server.url, "POST", ENDPOINTS[kind], variant)
            assert (resp.status, resp.json) == (200, want), (kind, resp.body[:300])
        resp = http(server.url, "POST", ENDPOINTS[kind], old_style(record, T - 1))
        assert resp.status == 400 and resp.error["details"][0]["field"] == "signatures.0.timestamp"
    assert _state(http, server.url) == before
    assert _skeptic(http, server.url, subject) == skeptic


# ---- internal errors -------------------------------------------------------------------------


def test_an_internal_error_is_a_500_with_the_request_id_not_invalid_request(
    server: Any, http: Http, tmp_path: Path
) -> None:
    a = Signer()
    seq, _ = _state(http, server.url)
    # Projections one frame ahead of the journal, behind the server's back: the
    # next frame's assertion row collides (a constraint violation in the writer).
    conn = apsw.Connection(str(tmp_path / "db" / "stemedb.db"))
    conn.set_busy_timeout(5000)
    with conn:
        conn.execute(
            "INSERT INTO assertions (seq, hash, subject, predicate, object_type, value_key,"
            " confidence, tier, lifecycle, timestamp, written_ms)"
            " VALUES (?, ?, 's', 'p', 'Text', '\"x\"', 1, 0, 'Proposed', 0, 0)",
            (seq + 1, b"\x02" * 32),
        )
    conn.close()
    resp = http(
        server.url,
        "POST",
        "/v1/assert",
        _claim("replay/internal", "v", [a]),
        {"X-Request-Id": "req-identity-500"},
    )
    assert resp.status == 500, resp.body[:300]
    assert resp.error["code"] == "internal"
    assert "req-identity-500" in resp.error["message"]
    assert _state(http, server.url)[0] == seq
    deadline = time.monotonic() + 10
    while "req-identity-500" not in server.output and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "req-identity-500" in server.output
    # A genuine client problem is still the client's: an unknown assertion is a 404.
    vote = sign_by("vote", {"assertion_hash": "ab" * 32, "weight": 1, "timestamp": T}, [a])
    missing = http(server.url, "POST", "/v1/vote", vote)
    assert (missing.status, missing.error["code"]) == (404, "not_found")
