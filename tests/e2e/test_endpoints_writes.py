"""Write endpoints over HTTP against the real server: assert, batch, normalize, and
the other record kinds, with their 201/200/400/404 answers (api.md "Writes")."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from e2ekit import Agent, Api, unique

from stemedb.crypto import public_key_hex, sign

ZERO = "0" * 64


def head_seq(api: Api) -> int:
    return int(api.get_ok("/v1/health")["journal_seq"])


def flip_bit(signed: dict[str, Any]) -> dict[str, Any]:
    """The same record with one bit of its first signature flipped."""
    record = json.loads(json.dumps(signed))
    sig = bytearray(bytes.fromhex(record["signatures"][0]["signature"]))
    sig[5] ^= 0x01
    record["signatures"][0]["signature"] = sig.hex()
    return record


# ---- POST /v1/assert and its alias --------------------------------------------------


def test_assert_created_then_exists_on_both_paths_with_the_same_hash(api: Api) -> None:
    agent = Agent()
    record = agent.assertion(f"{unique('w')}/one", "colour", "red", 0.7)
    first = api.post("/v1/assert", record)
    assert first.status == 201, first
    created = first.json
    assert created["status"] == "created" and isinstance(created["seq"], int)
    assert len(created["hash"]) == 64

    again = api.post("/v1/assertions", record)  # the alias path
    assert again.status == 200, again
    assert again.json == {"hash": created["hash"], "seq": created["seq"], "status": "exists"}
    again = api.post("/v1/assert", record)
    assert again.status == 200 and again.json["status"] == "exists"

    other = agent.assertion(f"{unique('w')}/two", "colour", "blue", 0.7)
    via_alias = api.post("/v1/assertions", other)
    assert via_alias.status == 201 and via_alias.json["status"] == "created"
    assert api.post("/v1/assert", other).json["hash"] == via_alias.json["hash"]


def test_stored_assertion_has_its_server_fields(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('w')}/fields"
    record = agent.assertion(subject, "dose", 5, 0.5, source="pubmed://123")
    created = api.write("/v1/assert", record)
    got = api.get_ok(f"/v1/assertions/{created['hash']}")
    assert got["hash"] == created["hash"] and got["seq"] == created["seq"]
    assert got["object"] == {"type": "Number", "value": 5}
    assert got["source_class"] == "Clinical" and got["tier"] == 1  # inferred from pubmed://
    assert got["agent_id"] == agent.id
    assert got["superseded"] is False
    assert isinstance(got["written_at"], int) and got["written_at"] > 10**12  # ms
    assert "kind" not in got


# ---- POST /v1/assert/batch -----------------------------------------------------------


def test_batch_json_array_one_result_per_item_in_order(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('w')}/batch"
    existing = agent.assertion(subject, "p", "old", 0.5)
    old = api.write("/v1/assert", existing)
    fresh = [agent.assertion(subject, "p", f"v{i}", 0.5) for i in range(3)]
    invalid = dict(fresh[0], confidence=1.7)
    orphan = agent.assertion(subject, "p", "orphan", 0.5, parent_hash=ZERO)
    items = [fresh[0], invalid, existing, fresh[1], fresh[1], orphan, fresh[2]]
    body = api.batch(items)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert [r["status"] for r in results] == [
        "created",
        "rejected",
        "exists",
        "created",
        "exists",
        "rejected",
        "created",
    ]
    assert (body["created"], body["exists"], body["rejected"]) == (3, 2, 2)
    assert results[1]["error"]["code"] == "invalid_request"
    assert any(d["field"] == "confidence" for d in results[1]["error"]["details"])
    assert results[2]["hash"] == old["hash"] and results[2]["seq"] == old["seq"]
    assert results[3]["hash"] == results[4]["hash"]
    assert results[5]["error"]["code"] == "not_found" and ZERO in results[5]["error"]["message"]
    seqs = [results[i]["seq"] for i in (0, 3, 6)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    for i in (0, 3, 6):
        assert api.get(f"/v1/assertions/{results[i]['hash']}").status == 200
    assert api.get(f"/v1/assertions/{results[5]['hash']}").status == 404


def test_batch_ndjson(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('w')}/ndjson"
    records = [agent.assertion(subject, "p", f"v{i}", 0.5) for i in range(3)]
    lines = [json.dumps(records[0]), "{not json", json.dumps(records[1]), json.dumps(records[2])]
    resp = api.call(
        "POST",
        "/v1/assert/batch",
        data=("\n".join(lines) + "\n").encode(),
        content_type="application/x-ndjson",
    )
    assert resp.status == 200, resp
    results = resp.json["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["status"] for r in results] == ["created", "rejected", "created", "created"]
    assert results[1]["error"]["code"] == "invalid_json"
    assert resp.json["created"] == 3 and resp.json["rejected"] == 1
    listed = api.query(subject=subject)
    assert listed["count"] == 3


def test_batch_references_earlier_in_the_same_batch_count_later_ones_do_not(api: Api) -> None:
    author, voter = Agent(), Agent()
    subject = f"{unique('w')}/refs"
    epoch1 = author.record("epoch", name=unique("e"), supersedes=[])
    parent = author.assertion(subject, "p", "parent", 0.5)
    parent_hash = _record_hash(api, parent, "assertion")
    epoch1_id = _record_hash(api, epoch1, "epoch")
    child = author.assertion(subject, "p", "child", 0.6, parent_hash=parent_hash, epoch=epoch1_id)
    epoch2 = author.record("epoch", name=unique("e"), supersedes=[epoch1_id])
    vote = voter.record("vote", assertion_hash=parent_hash, weight=1)
    supersede = author.record(
        "supersession", target_hash=parent_hash, reason="replaced", type="Correct"
    )
    body = api.batch([parent, epoch1, child, epoch2, vote, supersede])
    assert [r["status"] for r in body["results"]] == ["created"] * 6, body
    assert body["results"][0]["hash"] == parent_hash
    assert body["results"][1]["hash"] == epoch1_id
    # The other way round, the reference is not there yet when the child is written.
    late_parent = author.assertion(subject, "q", "late", 0.5)
    late_child = author.assertion(
        subject, "q", "early", 0.5, parent_hash=_record_hash(api, late_parent, "assertion")
    )
    body = api.batch([late_child, late_parent])
    assert [r["status"] for r in body["results"]] == ["rejected", "created"]
    assert body["results"][0]["error"]["code"] == "not_found"


def _record_hash(api: Api, record: dict[str, Any], kind: str) -> str:
    """The id the server will give a signed record (computed locally, nothing written)."""
    from stemedb.config import DEFAULT_SCHEME_TIERS
    from stemedb.records import prepare_record

    prepared = prepare_record(
        kind,
        record,
        now_s=int(time.time()),
        scheme_tiers=DEFAULT_SCHEME_TIERS,
        require_signatures=True,
    )
    return prepared.hash_hex


def test_atomic_batch_with_an_invalid_record_writes_nothing(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('w')}/atomic"
    good = [agent.assertion(subject, "p", f"v{i}", 0.5) for i in range(3)]
    bad = dict(good[1], confidence=2)
    before = head_seq(api)
    body = api.batch([good[0], bad, good[2]], atomic=True, expect=400)
    assert [r["status"] for r in body["results"]] == ["not_written", "rejected", "not_written"]
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
    assert body["created"] == 0 and body["rejected"] == 1
    assert head_seq(api) == before
    assert api.query(subject=subject)["count"] == 0


def test_atomic_batch_with_a_missing_reference_writes_nothing(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('w')}/atomic2"
    good = [agent.assertion(subject, "p", f"v{i}", 0.5) for i in range(2)]
    orphan = agent.assertion(subject, "p", "orphan", 0.5, parent_hash=ZERO)
    before = head_seq(api)
    body = api.batch([good[0], orphan, good[1]], atomic=True, expect=400)
    statuses = [r["status"] for r in body["results"]]
    assert statuses[1] == "rejected" and body["results"][1]["error"]["code"] == "not_found"
    assert statuses[0] != "created" and statuses[2] != "created"
    assert body["created"] == 0
    assert head_seq(api) == before
    assert api.query(subject=subject)["count"] == 0
    for r in body["results"]:
        if r.get("hash"):
            assert api.get(f"/v1/assertions/{r['hash']}").status == 404


def test_atomic_batch_all_good_with_an_in_batch_reference_is_written(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('w')}/atomic3"
    parent = agent.assertion(subject, "p", "a", 0.5)
    child = agent.assertion(
        subject, "p", "b", 0.5, parent_hash=_record_hash(api, parent, "assertion")
    )
    body = api.batch([parent, child], atomic=True)
    assert [r["status"] for r in body["results"]] == ["created", "created"]
    assert api.query(subject=subject)["count"] == 2


def test_batch_records_of_other_kinds_by_their_kind_field(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('w')}/kinds"
    target = api.write("/v1/assert", agent.assertion(subject, "p", "x", 0.5))
    alias = agent.record("alias", alias=f"{subject}-alias", canonical=subject)
    vote = agent.record("vote", assertion_hash=target["hash"], weight=0.5)
    body = api.batch([alias, vote])
    assert [r["status"] for r in body["results"]] == ["created", "created"]
    feed = api.get_ok("/v1/feed", {"after": target["seq"], "limit": 1000})
    kinds = {f["hash"]: f["kind"] for f in feed["frames"]}
    assert kinds[body["results"][0]["hash"]] == "alias"
    assert kinds[body["results"][1]["hash"]] == "vote"


def test_batch_body_must_be_an_array(api: Api) -> None:
    resp = api.post("/v1/assert/batch", {"not": "an array"})
    assert resp.status == 400 and resp.error["code"] == "invalid_request"


# ---- POST /v1/normalize ---------------------------------------------------------------


def test_normalize_then_sign_the_message_and_submit(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('w')}/normalize"
    unsigned = {
        "subject": subject,
        "predicate": "p",
        "object": "bare",
        "confidence": 1,
        "source": "fda://label/1",
    }
    before = head_seq(api)
    body = api.ok("POST", "/v1/normalize", unsigned)
    assert head_seq(api) == before  # writes nothing
    record = body["record"]
    assert record["object"] == {"type": "Text", "value": "bare"}
    assert record["source_class"] == "Regulatory"
    assert record["kind"] == "assertion" and isinstance(record["timestamp"], int)
    assert len(record["source_hash"]) == 64 and record["lifecycle"] == "Proposed"
    message = bytes.fromhex(body["message"])
    assert message == b"stemedb/v1/assertion\n" + bytes.fromhex(body["digest"])

    signed = dict(record)
    signed["signatures"] = [{"agent_id": agent.id, "signature": sign(agent.seed, message)}]
    created = api.write("/v1/assert", signed)
    stored = api.get_ok(f"/v1/assertions/{created['hash']}")
    assert stored["agent_id"] == public_key_hex(agent.seed)

    # Signing the bare (un-normalised) form instead is refused, and says why.
    bare = dict(unsigned, timestamp=record["timestamp"], signatures=signed["signatures"])
    bare["object"] = "other"
    resp = api.post("/v1/assert", bare)
    assert resp.status == 400 and resp.error["code"] == "invalid_signature"
    assert "normalize" in resp.error["message"]


def test_normalize_other_kinds(api: Api) -> None:
    body = api.ok(
        "POST", "/v1/normalize", {"assertion_hash": ZERO, "weight": -1}, params={"kind": "vote"}
    )
    assert body["record"]["kind"] == "vote"
    assert bytes.fromhex(body["message"]).startswith(b"stemedb/v1/vote\n")
    body = api.ok("POST", "/v1/normalize", {"kind": "epoch", "name": "x"})
    assert body["record"]["kind"] == "epoch" and body["record"]["supersedes"] == []
    resp = api.post(
        "/v1/normalize", {"subject": "a/b", "predicate": "p", "object": 1, "confidence": 3}
    )
    assert resp.status == 400 and resp.error["details"][0]["field"] == "confidence"


# ---- vote, epoch, supersede, aliases, outcome -----------------------------------------


def test_vote_created_exists_and_latest_vote_per_agent_counts(api: Api) -> None:
    a, b = Agent(), Agent()
    subject = f"{unique('w')}/vote"
    target = api.write("/v1/assert", a.assertion(subject, "p", "x", 0.5))["hash"]
    now = int(time.time())
    first = a.record("vote", assertion_hash=target, weight=1, timestamp=now - 10)
    assert api.post("/v1/vote", first).status == 201
    assert api.post("/v1/vote", first).json["status"] == "exists"
    api.write("/v1/vote", a.record("vote", assertion_hash=target, weight=-0.5, timestamp=now))
    api.write("/v1/vote", b.record("vote", assertion_hash=target, weight=0.25, timestamp=now))
    votes = api.get_ok(f"/v1/trace/{target}")["votes"]
    assert votes["count"] == 2 and votes["total"] == pytest.approx(-0.25)
    resp = api.post("/v1/vote", a.record("vote", assertion_hash=ZERO, weight=1))
    assert resp.status == 404 and resp.error["code"] == "not_found"
    assert ZERO in resp.error["message"]
    resp = api.post("/v1/vote", a.record("vote", assertion_hash=target, weight=1))
    assert resp.status == 201  # a new timestamp makes a new record
    resp = api.post("/v1/vote", dict(a.record("vote", assertion_hash=target, weight=1), weight=2))
    assert resp.status == 400 and resp.error["details"][0]["field"] == "weight"


def test_epoch_supersede_chain_and_lookup(api: Api) -> None:
    agent = Agent()
    e1 = api.write("/v1/epoch", agent.record("epoch", name=unique("e1"), description="first"))
    assert api.post("/v1/epoch", agent.record("epoch", name="x", supersedes=[ZERO])).status == 404
    e2 = api.write("/v1/epoch", agent.record("epoch", name=unique("e2"), supersedes=[e1["hash"]]))
    got1 = api.get_ok(f"/v1/epochs/{e1['hash']}")
    assert got1["superseded"] is True and got1["superseded_by"] == e2["hash"]
    assert got1["description"] == "first"
    got2 = api.get_ok(f"/v1/epochs/{e2['hash']}")
    assert got2["superseded"] is False and got2["supersedes"] == [e1["hash"]]
    ids = [e["id"] for e in api.get_ok("/v1/epochs")["epochs"]]
    assert ids.index(e1["hash"]) < ids.index(e2["hash"])


def test_supersede_hides_and_flags_the_target(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('w')}/supersede"
    old = api.write("/v1/assert", agent.assertion(subject, "p", "old", 0.5))
    new = api.write("/v1/assert", agent.assertion(subject, "p", "new", 0.5))
    record = agent.record(
        "supersession",
        target_hash=old["hash"],
        replacement_hash=new["hash"],
        reason="typo",
        type="Correct",
    )
    sup = api.write("/v1/supersede", record)
    assert api.post("/v1/supersede", record).json["status"] == "exists"
    assert api.get_ok(f"/v1/assertions/{old['hash']}")["superseded"] is True
    trace = api.get_ok(f"/v1/trace/{old['hash']}")
    assert trace["supersessions"][0]["hash"] == sup["hash"]
    assert trace["supersessions"][0]["replacement_hash"] == new["hash"]
    assert [a["hash"] for a in api.query(subject=subject)["assertions"]] == [new["hash"]]
    missing = agent.record("supersession", target_hash=ZERO, reason="x")
    resp = api.post("/v1/supersede", missing)
    assert resp.status == 404 and ZERO in resp.error["message"]


def test_aliases_post_and_get(api: Api) -> None:
    agent = Agent()
    canonical = f"{unique('w')}/canonical"
    alias = f"{unique('brand')}"
    api.write("/v1/assert", agent.assertion(canonical, "p", "x", 0.5))
    record = agent.record("alias", alias=alias, canonical=canonical)
    api.write("/v1/aliases", record)
    assert api.post("/v1/aliases", record).status == 200
    got = api.get_ok(f"/v1/aliases/{alias}")
    assert got == {"path": alias, "canonical": canonical, "aliases": [alias]}
    got = api.get_ok(f"/v1/aliases/{canonical}")
    assert got["canonical"] == canonical and got["aliases"] == [alias]
    # A path with several segments in the URL.
    deep_alias = f"{unique('w')}/deep/alias"
    api.write("/v1/aliases", agent.record("alias", alias=deep_alias, canonical=canonical))
    got = api.get_ok(f"/v1/aliases/{deep_alias}")
    assert got["canonical"] == canonical
    assert sorted(api.get_ok(f"/v1/aliases/{canonical}")["aliases"]) == sorted([alias, deep_alias])
    resp = api.post("/v1/aliases", agent.record("alias", alias=alias, canonical=alias + "x"))
    assert resp.status == 201  # a later alias record for the same path wins
    assert api.get_ok(f"/v1/aliases/{alias}")["canonical"] == alias + "x"


def test_outcome_created_and_moves_trust(api: Api) -> None:
    admin, judged, other = Agent(), Agent(), Agent()
    subject = f"{unique('w')}/outcome"
    now = int(time.time())
    mine = api.write("/v1/assert", judged.assertion(subject, "p", "judged", 0.8, timestamp=now - 5))
    api.write("/v1/assert", other.assertion(subject, "p", "other", 0.8, timestamp=now - 5))
    # Equal scores: trust decides once an inaccurate outcome lowers `judged`.
    record = admin.record(
        "outcome", agent_id=judged.id, assertion_hash=mine["hash"], accurate=False
    )
    api.write("/v1/outcome", record)
    assert api.post("/v1/outcome", record).json["status"] == "exists"
    result = api.query(subject=subject, predicate="p", lens="trust")["results"][0]
    assert result["winner"]["object"]["value"] == "other"
    bad = admin.record("outcome", agent_id=judged.id, assertion_hash=ZERO, accurate=True)
    resp = api.post("/v1/outcome", bad)
    assert resp.status == 404 and ZERO in resp.error["message"]


def test_missing_references_of_an_assertion_are_named(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('w')}/missing"
    for field_name in ("parent_hash", "epoch"):
        resp = api.post("/v1/assert", agent.assertion(subject, "p", "x", 0.5, **{field_name: ZERO}))
        assert resp.status == 404, resp
        assert resp.error["code"] == "not_found"
        assert ZERO in resp.error["message"]
        assert resp.error["details"][0]["field"] == field_name


# ---- errors of the write path ---------------------------------------------------------


def test_invalid_request_names_the_field_and_writes_nothing(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('w')}/invalid"
    signed = agent.assertion(subject, "p", "x", 0.5)
    before = head_seq(api)
    resp = api.post("/v1/assert", dict(signed, confidence=1.7))
    assert resp.status == 400 and resp.error["code"] == "invalid_request"
    assert "confidence" in resp.error["message"]
    assert resp.error["details"][0]["field"] == "confidence"
    missing = {k: v for k, v in signed.items() if k != "predicate"}
    resp = api.post("/v1/assert", missing)
    assert resp.status == 400 and resp.error["details"][0]["field"] == "predicate"
    unsigned = {k: v for k, v in signed.items() if k != "signatures"}
    resp = api.post("/v1/assert", unsigned)  # STEMEDB_REQUIRE_SIGNATURES defaults to true
    assert resp.status == 400 and resp.error["details"][0]["field"] == "signatures"
    resp = api.post("/v1/assert", dict(signed, kind="vote"))
    assert resp.status == 400 and resp.error["details"][0]["field"] == "kind"
    resp = api.post("/v1/assert", [signed])
    assert resp.status == 400 and resp.error["code"] == "invalid_request"
    assert head_seq(api) == before


def test_flipped_signature_bit_is_invalid_signature_and_writes_nothing(api: Api) -> None:
    agent = Agent()
    signed = agent.assertion(f"{unique('w')}/sig", "p", "x", 0.5)
    before = head_seq(api)
    resp = api.post("/v1/assert", flip_bit(signed))
    assert resp.status == 400 and resp.error["code"] == "invalid_signature"
    assert resp.error["details"][0]["field"] == "signatures.0.signature"
    body = api.batch([flip_bit(signed)])
    assert body["results"][0]["error"]["code"] == "invalid_signature"
    assert head_seq(api) == before
    assert api.post("/v1/assert", signed).status == 201


def test_invalid_json_bodies(api: Api) -> None:
    for data in (b"{bad", b"", b'{"a": NaN}', b'{"a": 1, "a": 2}', b"\xff\xfe"):
        resp = api.call("POST", "/v1/assert", data=data, content_type="application/json")
        if data == b"":
            assert resp.status == 400, resp
            continue
        assert resp.status == 400, (data, resp)
        assert resp.error["code"] == "invalid_json", (data, resp)


def test_wrong_media_type_is_415(api: Api) -> None:
    resp = api.call("POST", "/v1/assert", data=b"subject=x", content_type="text/plain")
    assert resp.status == 415 and resp.error["code"] == "unsupported_media_type"
    resp = api.call("POST", "/v1/assert/batch", data=b"x", content_type="text/csv")
    assert resp.status == 415


def test_body_over_one_mib_is_413(api: Api) -> None:
    agent = Agent()
    record = agent.assertion(f"{unique('w')}/big", "p", "x", 0.5)
    record["padding"] = "x" * (1024 * 1024)
    resp = api.call(
        "POST", "/v1/assert", data=json.dumps(record).encode(), content_type="application/json"
    )
    assert resp.status == 413 and resp.error["code"] == "payload_too_large"
    assert resp.header("X-Request-Id")
    # The batch route takes 32x as much.
    records = [agent.assertion(f"{unique('w')}/big", "p", "y" * 60000, 0.5) for _ in range(20)]
    data = json.dumps(records).encode()
    assert len(data) > 1024 * 1024
    resp = api.call("POST", "/v1/assert/batch", data=data, content_type="application/json")
    assert resp.status == 200 and resp.json["created"] == 20


def test_method_not_allowed_is_405_with_allow(api: Api) -> None:
    for method, path in (
        ("GET", "/v1/assert"),
        ("DELETE", "/v1/assertions"),
        ("PUT", "/v1/vote"),
        ("GET", "/v1/assert/batch"),
        ("DELETE", "/v1/query"),
    ):
        resp = api.call(method, path)
        assert resp.status == 405, (method, path, resp)
        assert resp.error["code"] == "method_not_allowed"
        assert resp.header("Allow")
        assert resp.header("X-Request-Id")


def test_ndjson_big_lines_crlf_last_line_without_newline_and_an_over_long_line(
    api: Api,
) -> None:
    agent = Agent()
    subject = f"{unique('w')}/ndjson-edges"
    records = [agent.assertion(subject, "p", f"{i}" + "x" * 60000, 0.5) for i in range(5)]
    lines = [json.dumps(r).encode() for r in records]  # each spans 64 KiB read chunks
    over_long = b'{"padding": "' + b"y" * (1024 * 1024 + 10) + b'"}'
    body = (
        lines[0]
        + b"\r\n"
        + lines[1]
        + b"\n\n"
        + over_long
        + b"\n"
        + lines[2]
        + b"\r\n"
        + lines[3]
        + b"\n"
        + lines[4]  # no newline at the end
    )
    resp = api.call("POST", "/v1/assert/batch", data=body, content_type="application/x-ndjson")
    assert resp.status == 200, resp
    results = resp.json["results"]
    assert [r["status"] for r in results] == [
        "created",
        "created",
        "rejected",
        "created",
        "created",
        "created",
    ]
    assert results[2]["error"]["code"] == "invalid_json"
    expected = [_record_hash(api, r, "assertion") for r in records]
    assert [r["hash"] for r in results if r["status"] == "created"] == expected


def test_concurrent_submissions_of_one_record_create_it_once(api: Api) -> None:
    record = Agent().assertion(f"{unique('w')}/race", "p", "x", 0.5)
    barrier = threading.Barrier(16)
    answers: list[tuple[int, dict[str, Any]]] = []

    def submit() -> None:
        barrier.wait()
        resp = api.post("/v1/assert", record)
        answers.append((resp.status, resp.json))

    threads = [threading.Thread(target=submit) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * 15 + [201]
    assert len({(body["hash"], body["seq"]) for _, body in answers}) == 1


def test_read_your_writes_over_http(api: Api) -> None:
    errors: list[str] = []

    def work(n: int) -> None:
        agent = Agent()
        subject = f"{unique('w')}/ryw{n}"
        for i in range(10):
            created = api.write("/v1/assert", agent.assertion(subject, "p", i, 0.5))
            if api.get(f"/v1/assertions/{created['hash']}").status != 200:
                errors.append(f"{n}/{i}: not readable by hash")
            if api.query(subject=subject)["count"] != i + 1:
                errors.append(f"{n}/{i}: not listed")
            if api.get_ok("/v1/health")["journal_seq"] < created["seq"]:
                errors.append(f"{n}/{i}: health behind")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
