"""The `agent_clusters` table (migrations/0015): which writer key introduced each agent.

The rules are in security/new_agents.py (who records) and lenses/dedupe.py
(what a cluster's near-duplicates do); this module only reads and writes rows.
A cluster is shown by a label derived from the key id (`label`), not the id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import apsw

from stemedb.store.schema import fetchall

MAX_PER_QUERY = 500


def label(api_key: str) -> str:
    """A stable, short name for the cluster of `api_key` (the key id is not shown)."""
    return "cluster-" + hashlib.sha3_256(f"stemedb-cluster:{api_key}".encode()).hexdigest()[:12]


def record(conn: apsw.Connection, rows: Iterable[tuple[bytes, str, int]]) -> None:
    """(agent, key id, ms) for agents a key introduced; an agent keeps its first key."""
    for agent, api_key, first_ms in rows:
        conn.execute(
            "INSERT OR IGNORE INTO agent_clusters (agent_id, api_key, first_ms) VALUES (?, ?, ?)",
            (agent, api_key, first_ms),
        )


def has_rows(conn: apsw.Connection) -> bool:
    return bool(fetchall(conn, "SELECT 1 FROM agent_clusters LIMIT 1"))


def clusters_of(
    conn: apsw.Connection, agent_ids: Iterable[bytes], known_at_ms: int | None = None
) -> dict[str, str]:
    """Agent (hex) -> cluster label, for the agents among `agent_ids` a key introduced
    (by `known_at_ms` when given). Empty, after one probe, while no key introduced any."""
    if not has_rows(conn):
        return {}
    wanted = list(dict.fromkeys(agent_ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), MAX_PER_QUERY):
        chunk = wanted[start : start + MAX_PER_QUERY]
        sql = (
            "SELECT agent_id, api_key FROM agent_clusters"
            f" WHERE agent_id IN ({','.join('?' * len(chunk))})"
        )
        params: list[object] = list(chunk)
        if known_at_ms is not None:
            sql += " AND first_ms <= ?"
            params.append(known_at_ms)
        found.update((bytes(a).hex(), label(str(k))) for a, k in fetchall(conn, sql, params))
    return found


def mates(conn: apsw.Connection, agent_id: bytes) -> tuple[str, list[bytes]] | None:
    """(cluster label, every agent of its cluster) for `agent_id`, or None."""
    rows = fetchall(conn, "SELECT api_key FROM agent_clusters WHERE agent_id = ?", (agent_id,))
    if not rows:
        return None
    key = str(rows[0][0])
    agents = fetchall(conn, "SELECT agent_id FROM agent_clusters WHERE api_key = ?", (key,))
    return label(key), [bytes(a) for (a,) in agents]
