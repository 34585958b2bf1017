"""The SQL the offline tools (stemedb.ops: backup, restore, archive, doctor) run.

Those tools work on database files (a live file's snapshot, a restore target,
a copy) rather than through a `Store`, but their statements live here with
every other one, so a change of schema or of locking is made in store/ only.
Each function is one statement or one fixed sequence, on the caller's
connection; the tools keep their own error handling.
"""

from __future__ import annotations

from typing import Any

import apsw

from stemedb.store.journal import Frame
from stemedb.store.schema import fetchall


def take_exclusive(conn: apsw.Connection) -> None:
    """Hold the whole file until the connection closes (raises BusyError if in use).

    In WAL mode `BEGIN EXCLUSIVE` alone does not notice idle readers; with
    `locking_mode=EXCLUSIVE` the lock covers the file and is kept after COMMIT.
    """
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    conn.execute("COMMIT")


def durable_writes(conn: apsw.Connection) -> None:
    """Foreign keys on and a full fsync per commit, for a tool that writes."""
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=FULL")


def begin_snapshot(conn: apsw.Connection) -> None:
    """Start a read transaction: everything read until `end_snapshot` is one snapshot."""
    conn.execute("BEGIN")


def end_snapshot(conn: apsw.Connection) -> None:
    conn.execute("COMMIT")


def fold_wal(conn: apsw.Connection) -> None:
    """Fold the WAL into the file and leave it self-contained (no -wal/-shm)."""
    conn.execute("PRAGMA journal_mode=DELETE").fetchall()


def integrity_check(conn: apsw.Connection) -> list[str]:
    """SQLite's own page-level check: ["ok"] when nothing is wrong."""
    return [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]


def assertion_count(conn: apsw.Connection) -> int:
    return int(fetchall(conn, "SELECT count(*) FROM assertions")[0][0])


def written_ms_at(conn: apsw.Connection, seq: int) -> int | None:
    """The `written_ms` of journal frame `seq`, or None if there is no such frame."""
    rows = fetchall(conn, "SELECT written_ms FROM journal WHERE seq = ?", (seq,))
    return int(rows[0][0]) if rows else None


def chain_at(conn: apsw.Connection, seq: int) -> Any:
    """The stored chain value of journal frame `seq` (as stored), or None."""
    rows = fetchall(conn, "SELECT chain FROM journal WHERE seq = ?", (seq,))
    return rows[0][0] if rows else None


def insert_frame(conn: apsw.Connection, frame: Frame) -> None:
    """Write a frame verified elsewhere (restore from the archive) exactly as it is."""
    conn.execute(
        "INSERT INTO journal (seq, kind, hash, body, written_ms, chain) VALUES (?, ?, ?, ?, ?, ?)",
        (frame.seq, frame.kind, frame.hash, frame.body, frame.written_ms, frame.chain),
    )


def quarantine_summary(conn: apsw.Connection) -> tuple[int, int | None, str | None] | None:
    """(records held undecided, the oldest's held_ms, the stored policy JSON or None)
    for the doctor; None on a schema older than migration 0008."""
    if not fetchall(conn, "SELECT 1 FROM sqlite_master WHERE name = 'quarantine'"):
        return None
    held, oldest = fetchall(
        conn, "SELECT count(*), min(held_ms) FROM quarantine WHERE decision IS NULL"
    )[0]
    stored = fetchall(conn, "SELECT policy FROM quarantine_policy ORDER BY from_seq DESC LIMIT 1")
    return (
        int(held),
        None if oldest is None else int(oldest),
        str(stored[0][0]) if stored else None,
    )
