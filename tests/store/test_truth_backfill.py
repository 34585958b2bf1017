"""A file whose records predate the truth table (migration 0016).

Builds that shipped migration 0013 created the reliability table empty and never
filled it for the records already in the file, so an upgraded database answered
`truth` from nothing and failed `stemedb verify --full`. The next start rebuilds
the projections once, as `stemedb reindex` does. The old files are made for real:
written by the current store, then put back in the state the upgrade found them
in (the truth tables dropped and the schema version before 0013; or the tables
there but empty, as left by a build that applied 0013).
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from replaykit import upgrade
from serverkit import StartServer
from test_truth_table import dump, world

from stemedb.config import Settings
from stemedb.store import Store, truth_state, verify
from stemedb.store.schema import available_migrations, connect, fetchall


def _version(suffix: str) -> int:
    return next(m.version for m in available_migrations() if m.name.endswith(suffix))


def _written(directory: Path) -> dict[str, list[tuple[object, ...]]]:
    """A database with a reliability table worth having (8 agents, 15 pairs)."""
    _, batches = world(5)
    directory.mkdir(parents=True, exist_ok=True)
    store = Store(Settings(db_dir=directory)).open()
    try:
        for batch in batches:
            store.write(batch)
        with store.reader() as conn:
            return dump(conn)
    finally:
        store.close()


def _as_left_by(path: Path, build: str) -> None:
    conn = connect(path)
    with conn:
        if build == "pre-0013":
            for table in truth_state.TABLES:
                conn.execute(f"DROP TABLE {table}")
            conn.execute(f"PRAGMA user_version = {_version('_truth_reliability.sql') - 1}")
        else:  # a build that applied 0013 (and the later ones) without filling the table
            for table in truth_state.TABLES:
                conn.execute(f"DELETE FROM {table}")
            conn.execute(f"PRAGMA user_version = {_version('_truth_backfill.sql') - 1}")
        conn.execute("DELETE FROM meta WHERE key = ?", (truth_state.BACKFILL_KEY,))
    conn.close()


def _truth_tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = connect(path)
    try:
        return dump(conn)
    finally:
        conn.close()


@pytest.mark.parametrize("build", ["pre-0013", "0013-0015"])
def test_the_first_start_fills_the_table_as_reindex_would(tmp_path: Path, build: str) -> None:
    original = _written(tmp_path / "db")
    path = tmp_path / "db" / "stemedb.db"
    _as_left_by(path, build)
    if build == "0013-0015":
        assert not any(_truth_tables(path).values())

    notes = upgrade(tmp_path / "db")

    assert "projections rebuilt from" in notes and "for the truth table" in notes
    upgraded = _truth_tables(path)
    assert len(upgraded["truth_agents"]) == 8 and len(upgraded["truth_links"]) >= 20
    assert upgraded == original  # the table the file would have had all along
    shutil.copytree(tmp_path / "db", tmp_path / "copy")
    verify.reindex(tmp_path / "copy" / "stemedb.db")
    assert _truth_tables(tmp_path / "copy" / "stemedb.db") == upgraded
    report = verify.verify(path, full=True)
    assert report.ok, report.checks
    # Done once: the mark is gone, and a second start rebuilds nothing.
    conn = connect(path)
    try:
        assert not truth_state.backfill_pending(conn)
    finally:
        conn.close()
    assert "rebuilt" not in upgrade(tmp_path / "db")


def test_without_the_rebuild_verify_names_the_table(tmp_path: Path) -> None:
    """What the fix is for: the state a 0013-0015 build left fails `verify --full`."""
    _written(tmp_path / "db")
    path = tmp_path / "db" / "stemedb.db"
    _as_left_by(path, "0013-0015")
    conn = connect(path)
    with conn:  # the schema current, as if 0016 had run without marking the file
        conn.execute(f"PRAGMA user_version = {_version('_truth_backfill.sql')}")
    conn.close()
    report = verify.verify(path, full=True)
    failed = [c for c in report.checks if not c["ok"]]
    assert [c["check"] for c in failed] == ["rebuild_matches"]
    assert "truth_agents" in failed[0]["detail"]


def test_reindex_ahead_of_the_start_does_the_backfill(tmp_path: Path) -> None:
    """Large files: `stemedb reindex` on the stopped server, then a start with no rebuild."""
    original = _written(tmp_path / "db")
    path = tmp_path / "db" / "stemedb.db"
    _as_left_by(path, "pre-0013")
    verify.reindex(path)  # applies the migrations (0016 marks the file), then rebuilds
    assert _truth_tables(path) == original
    assert "rebuilt" not in upgrade(tmp_path / "db")


def test_a_new_file_is_not_marked(tmp_path: Path) -> None:
    notes = upgrade(tmp_path / "db")
    assert "rebuilt" not in notes
    conn = connect(tmp_path / "db" / "stemedb.db")
    try:
        assert not truth_state.backfill_pending(conn)
        assert fetchall(conn, "SELECT count(*) FROM journal")[0][0] == 1  # the header alone
    finally:
        conn.close()


def test_the_server_keeps_systemd_waiting_while_it_rebuilds(
    run_server_process: StartServer, tmp_path: Path
) -> None:
    """Under systemd (`Type=notify`, `TimeoutStartSec=10min`) a rebuild of millions of
    frames must not be killed half-way (and redone, and killed, at every restart): the
    server asks for more time before it starts and as it goes, then says READY."""
    original = _written(tmp_path / "db")  # the fixture's STEMEDB_DB_DIR
    _as_left_by(tmp_path / "db" / "stemedb.db", "0013-0015")
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(60)
        server = run_server_process({"NOTIFY_SOCKET": str(path)})
        messages = []
        while not messages or not messages[-1].startswith("READY=1"):
            messages.append(sock.recv(4096).decode())
    assert len(messages) >= 2, messages
    extend = messages[0].splitlines()
    assert extend[0] == "EXTEND_TIMEOUT_USEC=60000000"
    assert extend[1].startswith("STATUS=rebuilding the projections (one-time): 0 of ")
    assert "projections rebuilt from" in server.output
    assert server.stop() == 0
    assert _truth_tables(tmp_path / "db" / "stemedb.db") == original
