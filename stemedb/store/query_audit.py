"""The `query_audit` table: the SQL behind stemedb.service.audit.

What goes into a row, the budgets and the batching stay in the service; this
module only writes and reads rows (plain tuples in the table's column order:
query_id, at_ms, agent_id, endpoint, lens, params, results).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import apsw

from stemedb.store.schema import fetchall

Row = tuple[Any, ...]


def insert(conn: apsw.Connection, rows: Sequence[Row]) -> None:
    """Write rows in the caller's (the writer's) transaction; a repeated id replaces."""
    conn.executemany("INSERT OR REPLACE INTO query_audit VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def purge_before(conn: apsw.Connection, cutoff_ms: int) -> None:
    """Drop rows older than the retention window."""
    conn.execute("DELETE FROM query_audit WHERE at_ms < ?", (cutoff_ms,))


def newest(
    conn: apsw.Connection,
    agent_id: str | None,
    from_ms: int | None,
    to_ms: int | None,
    limit: int,
) -> list[Row]:
    """Rows newest first, filtered by agent and time (both ends inclusive)."""
    clauses: list[str] = ["1"]
    params: list[Any] = []
    if agent_id:
        clauses.append("agent_id = ?")
        params.append(agent_id)
    if from_ms is not None:
        clauses.append("at_ms >= ?")
        params.append(from_ms)
    if to_ms is not None:
        clauses.append("at_ms <= ?")
        params.append(to_ms)
    where = " AND ".join(clauses)
    sql = f"SELECT * FROM query_audit WHERE {where} ORDER BY at_ms DESC, query_id LIMIT ?"
    return fetchall(conn, sql, (*params, limit))


def by_id(conn: apsw.Connection, query_id: str) -> Row | None:
    rows = fetchall(conn, "SELECT * FROM query_audit WHERE query_id = ?", (query_id,))
    return rows[0] if rows else None
