"""The Python client against a real server process: every endpoint method, signing,
idempotent resubmission, errors, streaming, the feed and thread safety.

One server per module (started like `make run` does, data under a temp dir)
with the demo sample loaded; each test writes under its own subject.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serverkit as SHARED

from stemedb import demo_data
from stemedb.client import ApiError, Client
from stemedb.crypto import generate_signing_key, public_key_hex
from stemedb.signing import attach_signatures

T = demo_data.T
_subjects = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("client-live")
    proc = SHARED.ServerProcess(SHARED.SERVE_ARGV, SHARED.server_env(tmp), tmp, tmp / "server.log")
    try:
        assert proc.wait_ready(), proc.output
        answer = Client(proc.url).batch(demo_data.build().records)
        assert answer["rejected"] == 0, answer
        yield proc
    finally:
        proc.kill()


@pytest.fixture
def client(server: Any) -> Client:
    return Client(server.url, seed=generate_signing_key())


def subject() -> str:
    return f"tests/client/s{next(_subjects)}"


def _wait_for_parked_poll(client: Client, timeout: float = 15.0) -> None:
    """Poll /metrics until a long poll is waiting in the server (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = client.metrics_text().splitlines()
        active = [float(x.split()[1]) for x in lines if x.startswith("stemedb_long_polls_active ")]
        if active and active[0] >= 1:
            return
        assert time.monotonic() < deadline, "no long poll parked in the server"
        time.sleep(0.02)


def winner_hash(answer: Any) -> str | None:
    winner = answer["results"][0]["winner"] if answer["results"] else None
    return winner["hash"] if winner else None


# ---- the demo sample, read through the client (acceptance battery 1) ------------------


def test_demo_ids_are_the_ids_the_server_assigns(server: Any) -> None:
    data = demo_data.build()
    answer = Client(server.url).batch(data.records)
    assert answer["exists"] == len(data.records) and answer["created"] == 0
    assert [item["hash"] for item in answer["results"]] == list(data.ids.values())


def test_battery_one_through_the_client(client: Client) -> None:
    ids = demo_data.build().ids
    pair = {"predicate": demo_data.PREDICATE}
    listed = client.query(demo_data.SUBJECT, **pair)
    assert {a["hash"] for a in listed["assertions"]} == {ids[n] for n in "ABCD"}
    assert winner_hash(client.query(demo_data.SUBJECT, lens="authority", **pair)) == ids["A"]
    assert winner_hash(client.query(demo_data.SUBJECT, lens="recency", **pair)) == ids["D"]
    consensus = client.query(demo_data.SUBJECT, lens="consensus", **pair)["results"][0]
    assert consensus["winner"]["object"]["value"] == "no_gastroparesis_signal"
    assert winner_hash(client.query(demo_data.SUBJECT, lens="votes", **pair)) == ids["B"]
    skeptic = client.skeptic(demo_data.SUBJECT, demo_data.PREDICATE)
    assert skeptic["status"] == "Contested" and skeptic["conflict_score"] > 0.3
    assert sorted(c["assertion_count"] for c in skeptic["claims"]) == [1, 1, 2]
    early = client.query(demo_data.SUBJECT, lens="recency", as_of=T + 1, **pair)
    assert winner_hash(early) == ids["B"]
    assert winner_hash(client.query(demo_data.SUBJECT, lens="recency", as_of=T - 1, **pair)) is None
    through_alias = client.query("ozempic", lens="recency", **pair)
    assert winner_hash(through_alias) == ids["D"]


def test_demo_extras_epochs_lineage_and_supersession(client: Client) -> None:
    ids = demo_data.build().ids
    s = demo_data.SUBJECT
    assert (
        winner_hash(client.query(s, predicate="label_gi_warning", lens="recency")) == ids["E1-late"]
    )
    assert (
        winner_hash(client.query(s, predicate="label_gi_warning", lens="epoch")) == ids["E2-claim"]
    )
    approved = client.query(s, predicate="max_weekly_dose_mg", lens="recency", lifecycle="Approved")
    assert winner_hash(approved) == ids["Q"]
    assert winner_hash(client.query(s, predicate="max_weekly_dose_mg", lens="recency")) == ids["Q"]
    shown = client.query(s, predicate="max_weekly_dose_mg", lens="recency", include_superseded=True)
    assert winner_hash(shown) == ids["typo"]
    trace = client.trace(ids["Q"])
    assert [a["hash"] for a in trace["ancestors"]] == [ids["P"]]
    assert client.trace(ids["P"])["children"] == [ids["Q"]]
    assert client.trace(ids["typo"])["supersessions"]
    epochs = {e["name"]: e for e in client.epochs()}
    assert epochs["fda-label-2023"]["superseded"] and not epochs["fda-label-2024"]["superseded"]
    assert client.epoch(ids["E2"])["name"] == "fda-label-2024"
    assert client.aliases_of("ozempic")["canonical"] == s
    assert "wegovy" in client.aliases_of(s)["aliases"]
    layered = client.layered(s, demo_data.PREDICATE)
    assert layered["winner"]["hash"] == ids["A"]
    children = {c["segment"] for c in client.concepts("drugs")["children"]}
    assert "semaglutide" in children


# ---- writes ---------------------------------------------------------------------------


def test_assert_signs_and_a_resubmission_answers_exists(client: Client) -> None:
    s = subject()
    first = client.assert_(s, "p", "v", 0.7, source="pubmed://1", timestamp=T)
    assert first["status"] == "created" and first["seq"]
    again = client.assert_(s, "p", "v", 0.7, source="pubmed://1", timestamp=T)
    assert again == {**first, "status": "exists"}
    stored = client.assertion(first["hash"])
    assert stored["agent_id"] == client.public_key
    assert stored["source_class"] == "Clinical"  # inferred locally, signed as such
    assert stored["object"] == {"type": "Text", "value": "v"}


def test_assert_record_posts_exactly_what_it_is_given(client: Client) -> None:
    record = client.sign(
        "assertion",
        {"subject": subject(), "predicate": "p", "object": 3, "confidence": 0.5, "timestamp": T},
    )
    assert client.assert_record(record)["status"] == "created"
    assert client.assert_record(record)["status"] == "exists"
    record["confidence"] = 0.6  # the signature no longer covers the record
    with pytest.raises(ApiError) as info:
        client.assert_record(record)
    assert (info.value.status, info.value.code) == (400, "invalid_signature")
    assert info.value.request_id


def test_other_language_flow_normalize_then_sign_the_message(client: Client) -> None:
    unsigned = {"subject": subject(), "predicate": "p", "object": True, "confidence": 0.9}
    answer = client.normalize(unsigned)
    assert answer["record"]["object"] == {"type": "Boolean", "value": True}
    assert answer["message"].endswith(answer["digest"])
    assert client.seed is not None
    signed = attach_signatures("assertion", answer["record"], [client.seed])
    assert client.assert_record(signed)["status"] == "created"


def test_server_normalize_mode_signs_the_servers_form(server: Any) -> None:
    client = Client(server.url, seed=generate_signing_key(), normalize="server")
    assert client.assert_(subject(), "p", "x", 0.4)["status"] == "created"


def test_every_record_kind_has_a_write_method(client: Client) -> None:
    s = subject()
    target = client.assert_(s, "p", "old", 0.5)["hash"]
    replacement = client.assert_(s, "p", "new", 0.5, parent_hash=target)["hash"]
    assert client.vote(target, -0.5)["status"] == "created"
    epoch = client.create_epoch("e-" + s, description="test", supersedes=[])
    assert client.epoch(epoch["hash"])["superseded"] is False
    in_epoch = client.assert_(s, "q", "x", 0.5, epoch=epoch["hash"])
    assert client.assertion(in_epoch["hash"])["epoch"] == epoch["hash"]
    done = client.supersede(target, "replaced", replacement_hash=replacement, type="Correct")
    assert done["status"] == "created"
    assert client.assertion(target)["superseded"] is True
    assert client.alias(s + "-alias", s)["status"] == "created"
    assert client.aliases_of(s + "-alias")["canonical"] == s
    outcome = client.outcome(public_key_hex(generate_signing_key()), target, True)
    assert outcome["status"] == "created"
    assert client.write("vote", {"assertion_hash": replacement, "weight": 1})["status"] == "created"
    with pytest.raises(ValueError):
        client.write("nonsense", {})


def test_missing_references_are_404_naming_the_hash(client: Client) -> None:
    missing = "ab" * 32
    with pytest.raises(ApiError) as info:
        client.vote(missing, 1.0)
    assert info.value.status == 404 and missing in str(info.value)


def test_batch_reports_each_record_and_atomic_writes_nothing(client: Client) -> None:
    s = subject()
    good = client.sign("assertion", {"subject": s, "predicate": "p", "object": 1, "confidence": 1})
    answer = client.batch([good, {"subject": s}])
    assert (answer["created"], answer["rejected"]) == (1, 1)
    assert answer["results"][1]["error"]["code"] == "invalid_request"
    fresh = client.sign("assertion", {"subject": s, "predicate": "p", "object": 2, "confidence": 1})
    with pytest.raises(ApiError) as info:
        client.batch([fresh, {"subject": s}], atomic=True)
    assert info.value.status == 400
    assert info.value.body["results"][0]["status"] == "not_written"
    assert client.query(s)["count"] == 1


def test_batch_ndjson_streams_every_line(client: Client) -> None:
    s = subject()
    records = (
        client.sign("assertion", {"subject": s, "predicate": "p", "object": i, "confidence": 1})
        for i in range(50)
    )
    answer = client.batch_ndjson(records)
    assert answer["created"] == 50, answer
    assert client.query(s, limit=1000)["count"] == 50


# ---- reads ----------------------------------------------------------------------------


def test_query_all_follows_cursors(client: Client) -> None:
    s = subject()
    client.batch(
        client.sign("assertion", {"subject": s, "predicate": "p", "object": i, "confidence": 1})
        for i in range(7)
    )
    first = client.query(s, limit=3)
    assert first["count"] == 3 and first["next_cursor"]
    assert len(list(client.query_all(s, limit=3))) == 7


def test_export_streams_every_record_on_its_own_connection(client: Client) -> None:
    lines = client.export()
    first = next(lines)
    assert client.health()["status"] == "healthy"  # another call while the stream is open
    rest = list(lines)
    head = client.health()["journal_seq"]
    assert 1 + len(rest) >= head - 1  # every frame but the header (others may write meanwhile)
    assert '"kind":"assertion"' in first
    csv_lines = list(client.export("csv"))
    assert csv_lines[0].startswith("hash,seq,subject")
    records = list(client.export_records(kinds=["alias"]))
    assert {r["alias"] for r in records} >= {"ozempic", "wegovy"}


def test_feed_long_polls_and_follow_resumes_from_the_last_seq(client: Client) -> None:
    head = client.health()["journal_seq"]
    started = time.monotonic()
    assert client.feed(head, wait=0.5)["frames"] == []
    assert time.monotonic() - started >= 0.4
    got: list[dict[str, Any]] = []

    def reader() -> None:
        for frame in Client(client.base_url).follow(head, wait=5):
            got.append(dict(frame))
            if len(got) == 2:
                return

    thread = threading.Thread(target=reader)
    thread.start()
    _wait_for_parked_poll(client)  # the writes below wake the follower, not its first page
    s = subject()
    hashes = [client.assert_(s, "p", i, 0.5)["hash"] for i in range(2)]
    thread.join(10)
    assert not thread.is_alive()
    assert [f["hash"] for f in got] == hashes
    assert [f["seq"] for f in got] == [head + 1, head + 2]


def test_audit_trail_records_the_clients_agent_id(client: Client) -> None:
    s = subject()
    client.assert_(s, "p", "v", 0.5)
    answer = client.query(s, lens="recency")
    deadline = time.monotonic() + 5  # audit rows are written behind the answer
    while time.monotonic() < deadline:
        mine = client.audit_queries(agent_id=client.agent_id)
        if answer["query_id"] in {q["query_id"] for q in mine}:
            break
        time.sleep(0.05)
    assert answer["query_id"] in {q["query_id"] for q in mine}
    entry = client.audit_query(answer["query_id"])
    assert entry["agent_id"] == client.agent_id and entry["lens"] == "recency"


def test_operations_endpoints(client: Client) -> None:
    health = client.health()
    assert health["status"] == "healthy" and health["assertion_count"] > 0
    assert client.ready()["ready"] is True
    assert "stemedb_http_requests_total" in client.metrics_text()
    assert client.admin_stats()["journal_seq"] == client.health()["journal_seq"]
    assert client.admin_verify()["ok"] is True
    backup = client.admin_backup()
    assert backup["journal_seq"] == client.health()["journal_seq"]
    assert Path(backup["path"], "stemedb.db").is_file()


def test_unknown_assertion_is_a_404_api_error(client: Client) -> None:
    with pytest.raises(ApiError) as info:
        client.assertion("00" * 32)
    assert (info.value.status, info.value.code) == (404, "not_found")


# ---- concurrency and connections --------------------------------------------------------


def test_one_client_shared_by_threads(client: Client) -> None:
    s = subject()
    errors: list[BaseException] = []
    hashes: list[str] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                hashes.append(client.assert_(s, "p", f"{n}-{i}", 0.5)["hash"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(set(hashes)) == 80
    assert client.query(s, limit=1000)["count"] == 80


def test_calls_on_one_thread_reuse_one_connection(client: Client) -> None:
    client.health()
    sock = client.transport._local.conn.sock
    for _ in range(5):
        client.epochs()
    assert client.transport._local.conn.sock is sock
