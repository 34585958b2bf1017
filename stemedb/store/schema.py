"""Opening the SQLite file and bringing its schema up to date.

Schema changes are numbered SQL files (`migrations/NNNN_name.sql`), applied in
order, one transaction each, tracked by `PRAGMA user_version`. They ship inside
the wheel as `stemedb/migrations`; in a source checkout they are read from the
top-level `migrations/` folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw

# "StmD": lets `file`, the server and `stemedb doctor` recognise our databases.
APPLICATION_ID = 0x53746D44
BUSY_TIMEOUT_MS = 5000
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_dir() -> Path:
    packaged = Path(__file__).resolve().parent.parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "migrations"


def available_migrations(folder: Path | None = None) -> list[Migration]:
    folder = folder or migrations_dir()
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), path.name, path.read_text("utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations in {folder} must be numbered 0001.. without gaps")
    return found


WAL_SIZE_LIMIT = 64 * 1024 * 1024


def connect(path: Path | str, *, sync: str = "full", readonly: bool = False) -> apsw.Connection:
    """One connection with the product's pragmas (WAL, synchronous, foreign keys)."""
    if readonly:
        flags = apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    else:
        flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE | apsw.SQLITE_OPEN_URI
    conn = apsw.Connection(str(path), flags=flags)
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    if not readonly:
        conn.execute("PRAGMA journal_mode=WAL")
        # After a checkpoint resets it, the -wal file shrinks back to this size: a WAL
        # that grew while something held a snapshot does not keep its disk forever.
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    conn.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def user_version(conn: apsw.Connection) -> int:
    return int(fetchall(conn, "PRAGMA user_version")[0][0])


def application_id(conn: apsw.Connection) -> int:
    return int(fetchall(conn, "PRAGMA application_id")[0][0])


def pending_migrations(conn: apsw.Connection) -> list[Migration]:
    current = user_version(conn)
    return [m for m in available_migrations() if m.version > current]


def apply_migrations(conn: apsw.Connection) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return them."""
    applied = []
    for migration in pending_migrations(conn):
        with conn:  # apsw: BEGIN ... COMMIT (or ROLLBACK on error)
            conn.execute(migration.sql)
            conn.execute(f"PRAGMA user_version={migration.version}")
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        applied.append(migration)
    return applied


def latest_version() -> int:
    migrations = available_migrations()
    return migrations[-1].version if migrations else 0


def fetchall(conn: apsw.Connection, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    """Rows as plain tuples; apsw types values as a union callers narrow themselves."""
    return list(conn.execute(sql, params).fetchall())
