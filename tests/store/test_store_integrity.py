"""Issue #2, integrity of the file: append-only triggers, reindex from the journal,
tamper detection by `verify` and by the stock `sqlite3` shell, and the query plans
of the hot reads (EXPLAIN QUERY PLAN)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
from stemedb.crypto import generate_signing_key, public_key_hex
from stemedb.records import prepare_record
from stemedb.signing import sign_record
from stemedb.store import PendingRecord, Store
from stemedb.store.candidates import CandidateFilter, candidate_sql, list_assertion_seqs
from stemedb.store.projections import PROJECTION_TABLES
from stemedb.store.verify import reindex, verify

SQLITE3 = "/usr/bin/sqlite3"
CHAIN_QUERY = """SELECT j.seq FROM journal j JOIN journal p ON p.seq = j.seq - 1
WHERE j.hash <> sha3(j.body, 256)
   OR j.chain <> sha3(p.chain || j.hash || j.written_ms, 256);"""


def pend(kind: str, fields: dict[str, Any], seed: bytes | None = None) -> PendingRecord:
    now = int(time.time())
    payload = sign_record(kind, fields, [seed]) if seed else fields
    prepared = prepare_record(
        kind, payload, now_s=now, scheme_tiers=DEFAULT_SCHEME_TIERS, require_signatures=False
    )
    return PendingRecord(
        prepared.kind, prepared.hash, prepared.body, prepared.record, int(time.time() * 1000)
    )


def assertion(subject: str, value: Any, seed: bytes | None = None, **fields: Any) -> PendingRecord:
    return pend(
        "assertion",
        {"subject": subject, "predicate": "p", "object": value, "confidence": 0.5, **fields},
        seed,
    )


def shell(db: Path, sql: str) -> list[str]:
    out = subprocess.run(
        [SQLITE3, "-bail", str(db), sql], check=True, capture_output=True, text=True, timeout=60
    )
    return [line for line in out.stdout.splitlines() if line.strip()]


def dump_path(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return {
            t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}").fetchall()), key=repr)
            for t in PROJECTION_TABLES
        }
    finally:
        conn.close()


def populate(store: Store) -> dict[str, PendingRecord]:
    """Every record kind, including votes replacing votes, an epoch chain, an alias
    rewritten, outcomes moving trust, supersessions."""
    a, b = generate_signing_key(), generate_signing_key()
    e1 = pend("epoch", {"name": "e1"}, a)
    e2 = pend("epoch", {"name": "e2", "supersedes": [e1.hash.hex()]}, a)
    e3 = pend("epoch", {"name": "e3", "supersedes": [e2.hash.hex()]}, b)
    x = assertion("i/x", "one", a, epoch=e1.hash.hex(), source="pubmed://1")
    y = assertion("i/x", "two", b, parent_hash=x.hash.hex(), source="pubmed://1")
    z = assertion("i/y/z", 3, None, epoch=e3.hash.hex())
    now = int(time.time())
    records = {
        "e1": e1,
        "e2": e2,
        "e3": e3,
        "x": x,
        "y": y,
        "z": z,
        "v1": pend("vote", {"assertion_hash": x.hash.hex(), "weight": 1, "timestamp": now - 9}, a),
        "v2": pend("vote", {"assertion_hash": x.hash.hex(), "weight": -1, "timestamp": now}, a),
        "v3": pend("vote", {"assertion_hash": x.hash.hex(), "weight": 0.5}, b),
        "s1": pend(
            "supersession",
            {"target_hash": x.hash.hex(), "replacement_hash": y.hash.hex(), "reason": "r"},
            b,
        ),
        "al1": pend("alias", {"alias": "brand", "canonical": "i/x", "timestamp": now - 5}, a),
        "al2": pend("alias", {"alias": "brand", "canonical": "i/y", "timestamp": now}, a),
        "o1": pend(
            "outcome",
            {
                "agent_id": public_key_hex(b),
                "assertion_hash": y.hash.hex(),
                "accurate": False,
                "timestamp": now - 3,
            },
            a,
        ),
        "o2": pend(
            "outcome",
            {
                "agent_id": public_key_hex(b),
                "assertion_hash": y.hash.hex(),
                "accurate": True,
                "timestamp": now,
            },
            a,
        ),
    }
    outcomes = store.write(list(records.values()))
    assert {o.status for o in outcomes} == {"created"}, outcomes
    store.write([assertion(f"i/bulk/{i % 5}", i) for i in range(40)])
    return records


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    (tmp_path / "live").mkdir()
    opened = Store(Settings(db_dir=tmp_path / "live")).open()
    yield opened
    opened.close()


def copy_db(store: Store, dest: Path) -> Path:
    """A consistent copy of the live file (SQLite online backup)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    target = apsw.Connection(str(dest))
    try:
        with target.backup("main", store._conn(), "main") as backup:
            backup.step()
    finally:
        target.close()
    return dest


# ---- append-only ------------------------------------------------------------------------


def test_triggers_reject_update_and_delete_of_frames(store: Store) -> None:
    store.write([assertion("t/a", 1)])
    conn = apsw.Connection(str(store.path))
    conn.set_busy_timeout(5000)
    try:
        for sql in (
            "UPDATE journal SET body = '{}' WHERE seq = 1",
            "UPDATE journal SET written_ms = 0 WHERE seq = 0",
            "DELETE FROM journal WHERE seq = 1",
            "DELETE FROM journal",
        ):
            with pytest.raises(apsw.ConstraintError, match="append-only"):
                conn.execute(sql)
    finally:
        conn.close()
    assert verify(store.path).ok


# ---- reindex --------------------------------------------------------------------------------


def test_reindex_from_the_journal_reproduces_identical_projections(
    store: Store, tmp_path: Path
) -> None:
    populate(store)
    path = store.path
    store.close()
    before = dump_path(path)
    assert before["trust"] and before["votes"] and before["epoch_superseded"]
    assert len(before["aliases"]) == 1 and before["aliases"][0][1] == "i/y"
    frames = reindex(path)
    assert frames == 1 + 14 + 40
    assert dump_path(path) == before
    report = verify(path, full=True)
    assert report.ok, report.to_dict()
    assert any(c["check"] == "rebuild_matches" and c["ok"] for c in report.checks)


def test_verify_full_catches_a_projection_that_disagrees(store: Store, tmp_path: Path) -> None:
    populate(store)
    copy = copy_db(store, tmp_path / "copy" / "stemedb.db")
    conn = apsw.Connection(str(copy))
    conn.execute("UPDATE assertions SET confidence = 0.99 WHERE subject = 'i/y/z'")
    conn.close()
    assert verify(copy).ok  # counts still agree
    report = verify(copy, full=True)
    assert not report.ok
    assert any(
        c["check"] == "rebuild_matches" and not c["ok"] and "assertions" in c["detail"]
        for c in report.checks
    )


# ---- tampering -----------------------------------------------------------------------------


def _tampered(store: Store, tmp_path: Path, name: str, sql: str) -> Path:
    copy = copy_db(store, tmp_path / name / "stemedb.db")
    conn = apsw.Connection(str(copy))
    conn.execute("DROP TRIGGER journal_no_update; DROP TRIGGER journal_no_delete;")
    conn.execute(sql)
    conn.close()
    return copy


def test_an_altered_body_is_caught_by_verify_and_by_the_shell_query(
    store: Store, tmp_path: Path
) -> None:
    populate(store)
    assert shell(store.path, CHAIN_QUERY) == []
    target = 5  # assertion y
    copy = _tampered(
        store,
        tmp_path,
        "body",
        "UPDATE journal SET body = replace(body, '\"confidence\":0.5', '\"confidence\":0.9')"
        f" WHERE seq = {target}",
    )
    assert '"confidence":0.9' in shell(copy, f"SELECT body FROM journal WHERE seq = {target}")[0]
    report = verify(copy)
    assert not report.ok and report.first_bad_seq == target
    assert any(f"frame {target}" in c["detail"] for c in report.checks if not c["ok"])
    assert shell(copy, CHAIN_QUERY) == [str(target)]
    assert verify(store.path).ok  # the live file is untouched


def test_an_altered_written_ms_or_a_removed_frame_breaks_the_chain(
    store: Store, tmp_path: Path
) -> None:
    populate(store)
    copy = _tampered(
        store, tmp_path, "ms", "UPDATE journal SET written_ms = written_ms + 1 WHERE seq = 12"
    )
    report = verify(copy)
    assert not report.ok and report.first_bad_seq == 12
    assert shell(copy, CHAIN_QUERY) == ["12"]
    copy = _tampered(store, tmp_path, "gap", "DELETE FROM journal WHERE seq = 20")
    report = verify(copy)
    # Named like the forensics query names it: the first frame that exists after the gap.
    assert not report.ok and report.first_bad_seq == 21
    assert "the frame before it is missing" in str(report.to_dict())
    copy = _tampered(store, tmp_path, "hdr", "UPDATE journal SET body = '{}' WHERE seq = 0")
    report = verify(copy)
    assert not report.ok and report.first_bad_seq == 0


# ---- query plans ---------------------------------------------------------------------------


def _plan(store: Store, sql: str, params: list[Any]) -> list[str]:
    with store.reader() as conn:
        return [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def test_candidate_read_is_answered_from_the_covering_index(store: Store) -> None:
    store.write([assertion(f"q/s{i % 10}", i) for i in range(200)])
    filters = [
        CandidateFilter(subjects=("q/s1",), predicate="p"),
        CandidateFilter(
            subjects=("q/s1",),
            predicate="p",
            as_of=10**10,
            known_at_ms=10**13,
            lifecycles=("Approved", "Proposed"),
            tiers=(0, 1, 5),
            agent_id=b"a" * 32,
            epoch=b"e" * 32,
        ),
        CandidateFilter(subjects=("q/s1",), predicate="p", include_superseded=True),
    ]
    for f in filters:
        plan = _plan(store, *candidate_sql(f))
        first = plan[0]
        assert "assertions USING COVERING INDEX assertions_lens" in first, plan
        assert "subject=? AND predicate=?" in first, plan
        assert not any(step.startswith("SCAN assertions") for step in plan), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan  # index order suffices


def test_prefix_read_is_a_range_scan(store: Store) -> None:
    store.write([assertion(f"q/s{i % 10}/leaf", i) for i in range(100)])
    f = CandidateFilter(subjects=("q",), prefix=True)
    plan = _plan(store, *candidate_sql(f))
    assert any(
        "USING COVERING INDEX assertions_lens (subject>? AND subject<?)" in s for s in plan
    ), plan
    assert not any(step.startswith("SCAN assertions") for step in plan), plan
    f = CandidateFilter(subjects=("q",), prefix=True, predicate="p")
    plan = _plan(store, *candidate_sql(f))
    assert any("(subject>? AND subject<?)" in s for s in plan), plan
    # And the read returns exactly the subtree, segment-wise.
    store.write([assertion("qq/other", 1), assertion("q", 2)])
    with store.reader() as conn:
        got = list_assertion_seqs(conn, f, after_seq=0, limit=1000)
    assert len(got) == 101
