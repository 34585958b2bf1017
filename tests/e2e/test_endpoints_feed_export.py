"""Change feed, export (NDJSON re-import into a second server, CSV) and the query
audit trail, over HTTP against the real server."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
from typing import Any

import pytest
from e2ekit import Agent, Api, RunningServer, poll, unique, wait_for_metric

from stemedb.canonical import canonical_json

CSV_COLUMNS = [
    "hash",
    "seq",
    "subject",
    "predicate",
    "object_type",
    "value",
    "confidence",
    "source_class",
    "source",
    "source_hash",
    "lifecycle",
    "parent_hash",
    "epoch",
    "timestamp",
    "agent_id",
    "written_at",
]


def head_seq(api: Api) -> int:
    return int(api.get_ok("/v1/health")["journal_seq"])


def walk_feed(api: Api, after: int, limit: int, **params: Any) -> tuple[list[dict[str, Any]], int]:
    frames: list[dict[str, Any]] = []
    head = head_seq(api)
    while after < head:
        body = api.get_ok("/v1/feed", {"after": after, "limit": limit, **params})
        assert body["next_after"] > after or not body["frames"]
        frames += body["frames"]
        if body["next_after"] == after:
            break
        after = body["next_after"]
    return frames, after


@pytest.fixture(scope="module")
def written(api: Api) -> dict[str, Any]:
    """A few records of several kinds written by this module."""
    a, b = Agent(), Agent()
    subject = f"{unique('f')}/feed"
    start = head_seq(api)
    hashes = api.batch_ok([a.assertion(subject, "p", i, 0.5) for i in range(12)])
    vote = api.write("/v1/vote", b.record("vote", assertion_hash=hashes[0], weight=1))["hash"]
    epoch = api.write("/v1/epoch", a.record("epoch", name=unique("fe")))["hash"]
    return {"start": start, "assertions": hashes, "vote": vote, "epoch": epoch, "subject": subject}


# ---- /v1/feed ---------------------------------------------------------------------------


def test_feed_is_in_order_gap_free_and_resumable(api: Api, written: dict[str, Any]) -> None:
    everything, last = walk_feed(api, 0, 1000)
    seqs = [f["seq"] for f in everything]
    assert seqs == list(range(1, last + 1))  # no header, no gap, no duplicate
    for frame in everything:
        assert set(frame) == {"seq", "kind", "hash", "written_ms", "record"}
        assert frame["record"]["kind"] == frame["kind"]
        body = canonical_json(frame["record"])  # the journal body is the canonical JSON
        assert hashlib.sha3_256(body.encode()).hexdigest() == frame["hash"]
    # Small pages from this module's start give the same frames.
    mine, _ = walk_feed(api, written["start"], 5)
    by_seq = {f["seq"]: f for f in everything}
    assert mine == [by_seq[s] for s in range(written["start"] + 1, last + 1)]
    ours = [f["hash"] for f in mine]
    assert ours[:12] == written["assertions"]
    assert ours[12:14] == [written["vote"], written["epoch"]]
    page = api.get_ok("/v1/feed", {"after": written["start"], "limit": 3})
    assert [f["seq"] for f in page["frames"]] == [written["start"] + i for i in (1, 2, 3)]
    assert page["next_after"] == written["start"] + 3
    resumed = api.get_ok("/v1/feed", {"after": page["next_after"], "limit": 3})
    assert resumed["frames"][0]["seq"] == written["start"] + 4
    at_head = api.get_ok("/v1/feed", {"after": last})
    assert at_head == {"frames": [], "next_after": last}


def test_feed_kinds_filter(api: Api, written: dict[str, Any]) -> None:
    votes, _ = walk_feed(api, written["start"], 100, kinds="vote")
    assert [f["hash"] for f in votes] == [written["vote"]]
    mixed, _ = walk_feed(api, written["start"], 100, kinds="vote,epoch")
    assert [f["kind"] for f in mixed] == ["vote", "epoch"]
    resp = api.get("/v1/feed", {"kinds": "gossip"})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "kinds"
    for bad in ({"wait": 31}, {"limit": 0}, {"after": -1}):
        resp = api.get("/v1/feed", bad)
        assert resp.status == 400 and resp.error["details"][0]["field"] == next(iter(bad))


def test_feed_long_poll_returns_early_when_a_write_arrives(api: Api) -> None:
    agent = Agent()
    head = head_seq(api)
    record = agent.assertion(f"{unique('f')}/poll", "p", "x", 0.5)
    created: dict[str, Any] = {}

    def later() -> None:
        # Write once the poll is parked in the server (state, not a sleep: under load a
        # fixed delay can pass before the poll even arrives).
        wait_for_metric(api, "stemedb_long_polls_active", 1)
        created.update(api.write("/v1/assert", record))

    thread = threading.Thread(target=later)
    started = time.monotonic()
    thread.start()
    body = api.get_ok("/v1/feed", {"after": head, "wait": 10})
    elapsed = time.monotonic() - started
    thread.join()
    assert elapsed < 8, elapsed  # woken by the write, long before its 10 s wait
    assert [f["hash"] for f in body["frames"]] == [created["hash"]]
    assert body["next_after"] == created["seq"]


def test_feed_long_poll_times_out_empty(api: Api) -> None:
    head = head_seq(api)
    started = time.monotonic()
    body = api.get_ok("/v1/feed", {"after": head, "wait": 1})
    elapsed = time.monotonic() - started
    assert body == {"frames": [], "next_after": head}
    assert 0.9 < elapsed < 4, elapsed


def test_feed_long_poll_is_not_ended_by_reads(api: Api) -> None:
    """`wait` long-polls "until something new arrives": a query (whose audit row goes
    through the writer) is not something new in the journal."""
    head = head_seq(api)
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            api.query(subject=f"{unique('f')}/nothing", lens="recency")
            time.sleep(0.1)

    thread = threading.Thread(target=reader)
    started = time.monotonic()
    thread.start()
    try:
        body = api.get_ok("/v1/feed", {"after": head, "wait": 2})
    finally:
        stop.set()
        thread.join()
    elapsed = time.monotonic() - started
    assert body["frames"] == []
    assert elapsed > 1.8, f"long poll returned empty after {elapsed:.2f} s of a 2 s wait"


# ---- /v1/export --------------------------------------------------------------------------


def test_export_ndjson_lines_are_the_journal_bodies(api: Api, written: dict[str, Any]) -> None:
    resp = api.get("/v1/export")
    assert resp.status == 200 and resp.header("Content-Type").startswith("application/x-ndjson")
    lines = resp.body.splitlines()
    everything, _ = walk_feed(api, 0, 1000)
    assert len(lines) >= len(everything)
    hashes = [hashlib.sha3_256(line).hexdigest() for line in lines]
    assert hashes[: len(everything)] == [f["hash"] for f in everything]
    only = api.get("/v1/export", {"kinds": "assertion", "after": written["start"]})
    got = [hashlib.sha3_256(line).hexdigest() for line in only.body.splitlines()]
    assert got[:12] == written["assertions"]
    assert all(json.loads(line)["kind"] == "assertion" for line in only.body.splitlines())
    resp = api.get("/v1/export", {"format": "xml"})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "format"


def _import_check(source: Api, target: RunningServer, how: str) -> None:
    exported = source.get("/v1/export").body
    lines = exported.splitlines()
    expected = [hashlib.sha3_256(line).hexdigest() for line in lines]
    if how == "ndjson":
        resp = target.api.call(
            "POST", "/v1/assert/batch", data=exported, content_type="application/x-ndjson"
        )
    else:
        resp = target.api.post("/v1/assert/batch", [json.loads(line) for line in lines])
    assert resp.status == 200, resp
    results = resp.json["results"]
    assert len(results) == len(lines), f"{len(results)} results for {len(lines)} lines"
    rejected = [r for r in results if r["status"] != "created"]
    assert not rejected, rejected[:3]
    assert [r["hash"] for r in results] == expected  # ids preserved
    # The second server's journal holds the same records in the same order.
    copied, _ = walk_feed(target.api, 0, 1000)
    assert [f["hash"] for f in copied] == expected
    assert target.api.get("/v1/export").body == exported
    again = target.api.call(
        "POST", "/v1/assert/batch", data=exported, content_type="application/x-ndjson"
    )
    assert {r["status"] for r in again.json["results"]} == {"exists"}


def test_export_reimports_into_a_fresh_server_as_ndjson(
    api: Api, written: dict[str, Any], server_factory: Any
) -> None:
    _import_check(api, server_factory(), "ndjson")


def test_export_reimports_into_a_fresh_server_as_a_json_array(
    api: Api, written: dict[str, Any], server_factory: Any
) -> None:
    target = server_factory()
    exported = api.get("/v1/export").body
    lines = exported.splitlines()
    resp = target.api.post("/v1/assert/batch", [json.loads(line) for line in lines])
    assert resp.status == 200, resp
    results = resp.json["results"]
    assert [r["status"] for r in results] == ["created"] * len(lines)
    assert [r["hash"] for r in results] == [hashlib.sha3_256(x).hexdigest() for x in lines]
    assert target.api.get("/v1/export").body == exported


def test_export_csv(api: Api, written: dict[str, Any]) -> None:
    resp = api.get("/v1/export", {"format": "csv"})
    assert resp.status == 200 and resp.header("Content-Type").startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert rows[0] == CSV_COLUMNS
    by_hash = {row[0]: dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]}
    total = int(api.get_ok("/v1/health")["assertion_count"])
    assert len(rows) - 1 == total
    first = by_hash[written["assertions"][0]]
    stored = api.get_ok(f"/v1/assertions/{written['assertions'][0]}")
    assert first["subject"] == written["subject"] and first["object_type"] == "Number"
    assert first["seq"] == str(stored["seq"]) and first["agent_id"] == stored["agent_id"]
    assert first["timestamp"] == str(stored["timestamp"])
    assert first["written_at"] == str(stored["written_at"])
    after = api.get("/v1/export", {"format": "csv", "after": written["start"]})
    later = list(csv.reader(io.StringIO(after.text)))
    assert later[0] == CSV_COLUMNS
    assert [r[0] for r in later[1:13]] == written["assertions"]
    resp = api.get("/v1/export", {"format": "csv", "kinds": "vote"})
    assert resp.status == 400


# ---- audit ------------------------------------------------------------------------------------


def test_queries_are_audited_with_the_agent_and_the_contributions(
    api: Api, written: dict[str, Any]
) -> None:
    who = Agent().id
    body = api.ok(
        "POST",
        "/v1/query",
        {"subject": written["subject"], "lens": "confidence"},
        headers={"X-Agent-Id": who},
    )
    query_id = body["query_id"]
    listed = poll(lambda: api.get_ok("/v1/audit/queries", {"agent_id": who})["queries"])
    assert [q["query_id"] for q in listed] == [query_id]
    entry = listed[0]
    assert entry["agent_id"] == who and entry["endpoint"] == "query"
    assert entry["lens"] == "confidence"
    assert entry["params"]["subject"] == written["subject"]
    assert abs(entry["at_ms"] - time.time() * 1000) < 60_000
    one = api.get_ok(f"/v1/audit/query/{query_id}")
    assert one == entry
    (group,) = one["results"]
    assert group["winner"] == body["results"][0]["winner"]["hash"]
    assert group["resolution_confidence"] == body["results"][0]["resolution_confidence"]
    weights = {c["hash"]: c["weight"] for c in group["contributions"]}
    assert set(weights) == set(written["assertions"])
    assert all(w == pytest.approx(0.5) for w in weights.values())
    # Plain listings and the other read endpoints are audited too.
    listing = api.ok(
        "GET", "/v1/query", params={"subject": written["subject"]}, headers={"X-Agent-Id": who}
    )
    skeptic = api.ok(
        "GET",
        "/v1/skeptic",
        params={"subject": written["subject"], "predicate": "p"},
        headers={"X-Agent-Id": who},
    )
    assert skeptic["status"] == "Contested"
    entries = poll(
        lambda: (lambda q: q if len(q) >= 3 else None)(
            api.get_ok("/v1/audit/queries", {"agent_id": who})["queries"]
        )
    )
    assert listing["query_id"] in {q["query_id"] for q in entries}
    assert {q["endpoint"] for q in entries} == {"query", "skeptic"}
    assert api.get_ok("/v1/audit/queries", {"agent_id": who, "limit": 1})["queries"][0][
        "at_ms"
    ] == max(q["at_ms"] for q in entries)
    future = int(time.time()) + 3600
    assert api.get_ok("/v1/audit/queries", {"agent_id": who, "from": future})["queries"] == []
    resp = api.get("/v1/audit/query/no-such-query")
    assert resp.status == 404 and resp.error["code"] == "not_found"


def test_bad_agent_header_is_a_400(api: Api) -> None:
    resp = api.call("POST", "/v1/query", {"subject": "a/b"}, headers={"X-Agent-Id": "me"})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "X-Agent-Id"


def test_a_feed_follower_sees_every_frame_once_while_writers_write(api: Api) -> None:
    start = head_seq(api)
    stop = threading.Event()
    seen: list[int] = []

    def follower() -> None:
        after = start
        while True:
            body = api.get_ok("/v1/feed", {"after": after, "limit": 7, "wait": 0.5})
            seen.extend(f["seq"] for f in body["frames"])
            after = body["next_after"]
            if stop.is_set() and not body["frames"] and after >= head_seq(api):
                return

    def writer(n: int) -> None:
        agent = Agent()
        for i in range(15):
            if i % 3:
                api.write("/v1/assert", agent.assertion(f"{unique('f')}/live", "p", i, 0.5))
            else:
                api.batch_ok(
                    [agent.assertion(f"{unique('f')}/live", "p", j, 0.5) for j in range(4)]
                )

    follow = threading.Thread(target=follower)
    follow.start()
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    follow.join(30)
    end = head_seq(api)
    assert seen == list(range(start + 1, end + 1))


def test_export_and_feed_stream_past_internal_page_boundaries(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('f')}/many"
    for chunk in range(3):
        api.batch_ok([agent.assertion(subject, "p", chunk * 1000 + i, 0.5) for i in range(700)])
    everything, last = walk_feed(api, 0, 1000)
    assert [f["seq"] for f in everything] == list(range(1, last + 1))
    assert last > 2000
    exported = api.get("/v1/export").body.splitlines()
    assert [hashlib.sha3_256(x).hexdigest() for x in exported] == [f["hash"] for f in everything]
    rows = list(csv.reader(io.StringIO(api.get("/v1/export", {"format": "csv"}).text)))
    assert len(rows) - 1 == sum(1 for f in everything if f["kind"] == "assertion")
    listed = api.query(subject=subject, limit=1000)
    assert listed["count"] == 1000 and listed["next_cursor"]
