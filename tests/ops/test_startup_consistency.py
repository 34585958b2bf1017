"""Issue 14 item 6 (start-up half): projections ahead of the journal are repaired at start.

Before: with the projections one frame ahead of the journal (a projection row
for a seq the journal does not have, or meta's applied seq beyond the head),
the server started "healthy" and answered every write 400 "UNIQUE constraint
failed". Now step 6 compares them with the journal head and rebuilds the
projections from the journal (the source of truth), saying so in its line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import apsw
from ops_support import cli_env, file_head, make_db, pend, run_cli, signed_assertions
from serverkit import StartServer, http_json

from stemedb.config import Settings
from stemedb.store import Store
from stemedb.store.verify import verify


def _projections_one_frame_ahead(db_dir: Path) -> tuple[int, str]:
    """Append an assertion, then remove its journal frame only; return (its seq, its hash)."""
    db = make_db(db_dir, (4,))
    store = Store(Settings(db_dir=db_dir)).open()
    try:
        record = pend(subject="ops/ahead", object="gone")
        (outcome,) = store.write([record])
        assert outcome.status == "created"
    finally:
        store.close()
    triggers = subprocess.run(
        ["sqlite3", str(db), "SELECT name FROM sqlite_master WHERE type='trigger'"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    conn = apsw.Connection(str(db))
    try:
        with conn:
            for trigger in triggers:
                conn.execute(f"DROP TRIGGER {trigger}")
            conn.execute("DELETE FROM journal WHERE seq = ?", (outcome.seq,))
    finally:
        conn.close()
    assert file_head(db)[0] == outcome.seq - 1
    assert not verify(db).ok
    return outcome.seq, record.hash.hex()


def test_server_rebuilds_projections_ahead_of_the_journal(
    tmp_path: Path, run_server_process: StartServer
) -> None:
    lost_seq, lost_hash = _projections_one_frame_ahead(tmp_path / "db")
    server = run_server_process()
    assert server.returncode is None, server.output
    assert "projections were ahead of the journal" in server.output
    assert f"journal head {lost_seq - 1}" in server.output and "§7" in server.output
    # Writes work again: the next frame takes the seq the stale row used to hold.
    status, _, body = http_json("POST", server.url + "/v1/assert/batch", signed_assertions(3, "x"))
    assert status == 200, body
    assert [r["status"] for r in body["results"]] == ["created"] * 3
    assert body["results"][0]["seq"] == lost_seq
    status, _, _ = http_json("GET", server.url + f"/v1/assertions/{lost_hash}")
    assert status == 404  # the journal is the truth: a row it does not hold is gone
    status, _, health = http_json("GET", server.url + "/v1/health")
    assert status == 200 and health["journal_seq"] == lost_seq + 2
    result = run_cli("verify", "--full", env=cli_env(tmp_path))
    assert result.returncode == 0, result.stdout


def test_applied_seq_beyond_the_head_is_repaired_at_open(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (3,))
    head = file_head(db)[0]
    conn = apsw.Connection(str(db))
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'applied_seq'", (head + 1,))
    conn.close()
    store = Store(Settings(db_dir=tmp_path / "db"))
    try:
        store.open_journal()
        line = store.open_projections()
        assert f"applied seq {head + 1}" in line and "rebuilt from the journal" in line
        store.start_writer()
        (outcome,) = store.write([pend(subject="ops/after", object="ok")])
        assert (outcome.status, outcome.seq) == ("created", head + 1)
    finally:
        store.close()
    assert verify(db, full=True).ok


def test_consistent_projections_are_left_alone(tmp_path: Path) -> None:
    make_db(tmp_path / "db", (2,))
    store = Store(Settings(db_dir=tmp_path / "db"))
    try:
        store.open_journal()
        assert "rebuilt" not in store.open_projections()
    finally:
        store.close()
