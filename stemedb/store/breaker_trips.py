"""The `breaker_trips` table: the SQL behind stemedb.security.breakers' persistence.

Trips are server state (migrations/0011): saved when an agent trips, loaded
at start, deleted by an admin reset. Writes run in the server writer's
transaction (`Store.write_local`).
"""

from __future__ import annotations

from typing import Any

import apsw

from stemedb.store.schema import fetchall

COLUMNS = "api_key, agent_id, reason, detail, tripped_ms, open_until_ms, trips, baseline"
Row = tuple[Any, ...]


def save(conn: apsw.Connection, row: Row, now_ms: int) -> None:
    """Insert or replace one (api_key, agent) trip (`COLUMNS` order); drop closed ones."""
    conn.execute("DELETE FROM breaker_trips WHERE open_until_ms <= ?", (now_ms,))
    conn.execute(
        f"INSERT OR REPLACE INTO breaker_trips ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        row,
    )


def open_rows(conn: apsw.Connection, now_ms: int) -> list[Row]:
    """Trips still open at `now_ms`, oldest first."""
    return fetchall(
        conn,
        f"SELECT {COLUMNS} FROM breaker_trips WHERE open_until_ms > ? ORDER BY tripped_ms",
        (now_ms,),
    )


def clear(conn: apsw.Connection, agent_id: str) -> int:
    """Delete every trip of `agent_id` (all API keys); how many rows went."""
    found = fetchall(conn, "SELECT count(*) FROM breaker_trips WHERE agent_id = ?", (agent_id,))
    conn.execute("DELETE FROM breaker_trips WHERE agent_id = ?", (agent_id,))
    return int(found[0][0])
