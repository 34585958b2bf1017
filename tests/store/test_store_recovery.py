"""Issue #2, opening and recovering the file: projections behind the journal are
caught up at open, a missing/foreign/unknown header is a StartupError naming the
problem, migrations are tracked by user_version and idempotent, and a `kill -9`
in the middle of batches loses no acknowledged write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import apsw
import pytest

from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
from stemedb.records import prepare_record
from stemedb.store import PendingRecord, StartupError, Store, schema
from stemedb.store.projections import PROJECTION_TABLES, applied_seq
from stemedb.store.verify import verify

SQLITE3 = "/usr/bin/sqlite3"
CHAIN_QUERY = """SELECT j.seq FROM journal j JOIN journal p ON p.seq = j.seq - 1
WHERE j.hash <> sha3(j.body, 256)
   OR j.chain <> sha3(p.chain || j.hash || j.written_ms, 256);"""


def pend(kind: str = "assertion", **fields: Any) -> PendingRecord:
    if kind == "assertion":
        fields = {"subject": "r/x", "predicate": "p", "object": "v", "confidence": 0.5, **fields}
    prepared = prepare_record(
        kind,
        fields,
        now_s=int(time.time()),
        scheme_tiers=DEFAULT_SCHEME_TIERS,
        require_signatures=False,
    )
    return PendingRecord(
        prepared.kind, prepared.hash, prepared.body, prepared.record, int(time.time() * 1000)
    )


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return {
            t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}").fetchall()), key=repr)
            for t in PROJECTION_TABLES
        }
    finally:
        conn.close()


def make_db(directory: Path, records: int = 30) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    store = Store(Settings(db_dir=directory)).open()
    try:
        parent = pend(object="root")
        written = store.write(
            [parent] + [pend(subject=f"r/s{i % 4}", object=i) for i in range(records)]
        )
        assert {o.status for o in written} == {"created"}
        store.write(
            [
                pend("vote", assertion_hash=parent.hash.hex(), weight=1),
                pend("supersession", target_hash=parent.hash.hex(), reason="r"),
                pend("epoch", name="e"),
                pend("alias", alias="brand", canonical="r/x"),
            ]
        )
    finally:
        store.close()
    return directory / "stemedb.db"


def open_store(directory: Path, **settings: Any) -> Store:
    return Store(Settings(db_dir=directory, **settings)).open()


def raw(path: Path, sql: str) -> None:
    conn = apsw.Connection(str(path))
    try:
        conn.execute(sql)
    finally:
        conn.close()


# ---- catch-up at open ---------------------------------------------------------------------


def test_projections_behind_the_journal_are_caught_up_at_open(tmp_path: Path) -> None:
    path = make_db(tmp_path / "db")
    expected = dump(path)
    # Simulate a projection that lags: remove what the last 12 frames produced and
    # set applied_seq back, as if the process died between journal and projections.
    conn = apsw.Connection(str(path))
    head = conn.execute("SELECT max(seq) FROM journal").fetchall()[0][0]
    lag_from = head - 12
    with conn:
        conn.execute("DELETE FROM assertions WHERE seq > ?", (lag_from,))
        for table in (
            "votes",
            "vote_totals",
            "supersessions",
            "epochs",
            "epoch_closure",
            "epoch_superseded",
            "aliases",
            "trust",
        ):
            conn.execute(f"DELETE FROM {table}")
        # Only frames <= lag_from that are assertions survive; other kinds come later.
        conn.execute("UPDATE meta SET value = ? WHERE key = 'applied_seq'", (lag_from,))
    conn.close()
    assert dump(path) != expected
    assert not verify(path).ok  # projections not at head

    store = open_store(tmp_path / "db")
    try:
        with store.reader() as reader:
            assert applied_seq(reader) == head
        assert store.assertion_count == 31
    finally:
        store.close()
    assert dump(path) == expected
    assert verify(path, full=True).ok


def test_open_logs_what_it_replayed(tmp_path: Path) -> None:
    path = make_db(tmp_path / "db", records=5)
    raw(
        path,
        "DELETE FROM assertions WHERE seq > 3; "
        "UPDATE meta SET value = 3 WHERE key = 'applied_seq'; DELETE FROM votes; "
        "DELETE FROM vote_totals; DELETE FROM supersessions; DELETE FROM epochs; "
        "DELETE FROM aliases",
    )
    store = Store(Settings(db_dir=tmp_path / "db"))
    try:
        store.open_journal()
        notes = store.open_projections()
        assert "re-applied" in notes
        store.start_writer()
    finally:
        store.close()
    assert verify(path, full=True).ok


# ---- headers ----------------------------------------------------------------------------------


def _startup_error(directory: Path) -> StartupError:
    store = Store(Settings(db_dir=directory))
    with pytest.raises(StartupError) as info:
        try:
            store.open()
        finally:
            store.close()
    return info.value


def test_missing_header_is_a_startup_error_naming_it(tmp_path: Path) -> None:
    path = make_db(tmp_path / "db", records=2)
    raw(path, "DROP TRIGGER journal_no_delete; DELETE FROM journal WHERE seq = 0")
    error = _startup_error(tmp_path / "db")
    assert "header" in str(error) and "missing" in str(error)
    assert "seq 0" in str(error)
    assert error.runbook.startswith("docs/operations/runbooks/")


def test_unknown_header_format_or_version_is_a_startup_error(tmp_path: Path) -> None:
    path = make_db(tmp_path / "a", records=2)
    raw(
        path,
        "DROP TRIGGER journal_no_update; UPDATE journal SET body = "
        '\'{"format":"other-db","version":1}\' WHERE seq = 0',
    )
    error = _startup_error(tmp_path / "a")
    assert "unknown format" in str(error) or "format" in str(error)

    path = make_db(tmp_path / "b", records=2)
    raw(
        path,
        "DROP TRIGGER journal_no_update; UPDATE journal SET body = "
        "json_set(body, '$.version', 9) WHERE seq = 0",
    )
    error = _startup_error(tmp_path / "b")
    assert "version" in str(error)


def test_a_file_that_is_not_sqlite_or_not_ours_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "stemedb.db").write_bytes(b"this is not a database" * 100)
    error = _startup_error(tmp_path / "junk")
    assert "not an SQLite database" in str(error)

    (tmp_path / "foreign").mkdir()
    raw(
        tmp_path / "foreign" / "stemedb.db",
        "PRAGMA application_id = 1234; CREATE TABLE t(x); PRAGMA user_version = 1",
    )
    error = _startup_error(tmp_path / "foreign")
    assert "not a StemeDB database" in str(error)

    (tmp_path / "newer").mkdir()
    newer = schema.latest_version() + 1
    raw(
        tmp_path / "newer" / "stemedb.db",
        f"PRAGMA application_id = {schema.APPLICATION_ID}; CREATE TABLE t(x); "
        f"PRAGMA user_version = {newer}",
    )
    error = _startup_error(tmp_path / "newer")
    assert "newer" in str(error) and str(newer) in str(error)


def test_a_broken_chain_tail_is_a_startup_error_naming_the_seq(tmp_path: Path) -> None:
    path = make_db(tmp_path / "db", records=10)
    raw(
        path,
        "DROP TRIGGER journal_no_update; UPDATE journal SET written_ms = written_ms + 1 "
        "WHERE seq = 9",
    )
    error = _startup_error(tmp_path / "db")
    assert "seq 9" in str(error)


# ---- migrations -------------------------------------------------------------------------------


def test_migrations_are_tracked_by_user_version_and_idempotent(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    directory.mkdir()
    store = Store(Settings(db_dir=directory))
    store.open_journal()
    notes = store.open_projections()
    assert "applied 0001_initial.sql" in notes and "wrote journal header" in notes
    store.start_writer()
    conn = store._conn()
    assert schema.user_version(conn) == schema.latest_version() >= 1
    assert schema.application_id(conn) == schema.APPLICATION_ID
    assert schema.pending_migrations(conn) == []
    assert schema.apply_migrations(conn) == []
    header = conn.execute("SELECT body FROM journal WHERE seq = 0").fetchall()[0][0]
    store.close()

    again = Store(Settings(db_dir=directory))
    again.open_journal()
    notes = again.open_projections()
    assert "applied" not in notes and "wrote journal header" not in notes
    again.start_writer()
    conn = again._conn()
    assert conn.execute("SELECT body FROM journal WHERE seq = 0").fetchall()[0][0] == header
    assert conn.execute("SELECT count(*) FROM journal").fetchall() == [(1,)]
    again.close()
    parsed = json.loads(header)
    assert parsed["format"] == "stemedb-journal" and parsed["version"] == 1
    assert len(parsed["node_id"]) == 16 and isinstance(parsed["created_ms"], int)


def test_migration_files_are_numbered_without_gaps() -> None:
    found = schema.available_migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "0001_initial.sql"


# ---- kill -9 in the middle of batches ------------------------------------------------------

WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
    from stemedb.records import prepare_record
    from stemedb.store import PendingRecord, Store

    store = Store(Settings(db_dir=Path(sys.argv[1]))).open()
    lock = threading.Lock()

    def pend(n, i):
        fields = {"subject": f"k/t{n}", "predicate": "p", "object": f"{n}-{i}-" + "x" * 200,
                  "confidence": 0.5}
        p = prepare_record("assertion", fields, now_s=int(time.time()),
                           scheme_tiers=DEFAULT_SCHEME_TIERS, require_signatures=False)
        return PendingRecord(p.kind, p.hash, p.body, p.record, int(time.time() * 1000))

    def work(n):
        i = 0
        while True:
            batch = [pend(n, i + j) for j in range(1 + (i % 13))]
            i += len(batch)
            outcomes = store.write(batch)
            with lock:
                for o in outcomes:
                    assert o.status == "created"
                    sys.stdout.write(o.hash.hex() + "\\n")
                sys.stdout.flush()

    print("started", flush=True)
    for n in range(4):
        threading.Thread(target=work, args=(n,), daemon=True).start()
    while True:
        time.sleep(1)
    """
)


def test_kill_9_mid_batch_loses_no_acknowledged_write(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    directory.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[str] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started", proc.stderr
        deadline = time.monotonic() + 60
        while len(acknowledged) < 600 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        acknowledged += [h for h in rest.splitlines() if len(h) == 64]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 600, f"only {len(acknowledged)} writes acknowledged"

    path = directory / "stemedb.db"
    store = open_store(directory)
    try:
        with store.reader() as conn:
            present = {bytes(r[0]).hex() for r in conn.execute("SELECT hash FROM journal")}
            count = conn.execute("SELECT count(*) FROM assertions").fetchall()[0][0]
        head = store.current_head.seq
    finally:
        store.close()
    missing = [h for h in acknowledged if h not in present]
    assert missing == []
    assert count == head >= len(set(acknowledged))
    report = verify(path, full=True)
    assert report.ok, report.to_dict()
    out = subprocess.run(
        [SQLITE3, "-readonly", str(path), CHAIN_QUERY],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == ""


V1_QUERY_AUDIT = """
DROP TABLE query_audit;
CREATE TABLE query_audit (
  query_id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, agent_id TEXT, endpoint TEXT NOT NULL,
  lens TEXT, params TEXT NOT NULL, results TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX query_audit_by_time  ON query_audit (at_ms);
CREATE INDEX query_audit_by_agent ON query_audit (agent_id, at_ms);
PRAGMA user_version = 1;
"""


def test_migration_2_keeps_every_audit_row_in_a_rowid_table(tmp_path: Path) -> None:
    from stemedb.service.audit import AuditLog

    directory = tmp_path / "db"
    directory.mkdir()
    store = Store(Settings(db_dir=directory))
    store.open_journal()
    store.open_projections()
    store.close()
    conn = apsw.Connection(str(directory / "stemedb.db"))
    conn.execute(V1_QUERY_AUDIT)  # the schema as 0001 made it
    rows = [
        (
            f"q{i}",
            1_000 + i,
            "agent" if i % 2 else None,
            "query",
            "authority",
            '{"subject":"s"}',
            json.dumps([{"winner": "ab" * 32, "contributions": [{"hash": "cd" * 32}] * 12}]),
        )
        for i in range(50)
    ]
    with conn:
        conn.executemany("INSERT INTO query_audit VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()

    again = Store(Settings(db_dir=directory))
    again.open_journal()
    assert "applied 0002_query_audit_rowid.sql" in again.open_projections()
    again.start_writer()
    try:
        conn = again._conn()
        ddl = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'query_audit'"
        ).fetchall()[0][0]
        assert "WITHOUT ROWID" not in ddl.upper()
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(query_audit)").fetchall()}
        assert {"query_audit_by_time", "query_audit_by_agent"} <= indexes
        assert sorted(conn.execute("SELECT * FROM query_audit").fetchall()) == sorted(rows)
        audit = AuditLog(again, enabled=True, retention_days=36500)
        assert audit.get("q7")["agent_id"] == "agent"
        assert [e["query_id"] for e in audit.list("agent", None, None, 100)][:2] == ["q49", "q47"]
        with pytest.raises(apsw.ConstraintError), conn:  # still one row per query id
            conn.execute("INSERT INTO query_audit VALUES (?, ?, ?, ?, ?, ?, ?)", rows[0])
    finally:
        again.close()
