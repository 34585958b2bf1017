"""The agent tier registry: projection of `agent_tier` records, and its reads.

One row per record (migrations/0005_agent_tiers.sql), never updated: the
newest row of an agent (highest seq) is in force, and a `known_at` read
takes the newest row written by then, so time travel replays the registry
too. `projections.apply` calls `apply` for every frame; only `agent_tier`
frames change anything here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import apsw

from stemedb.records import SourceClass
from stemedb.store.schema import fetchall

KIND = "agent_tier"
TABLE = "agent_tiers"
MAX_PER_QUERY = 500  # well under SQLite's bound-parameter limit

_COLUMNS = "seq, hash, agent_id, max_tier, name, note, registered_by, timestamp, written_ms"


def apply(
    conn: apsw.Connection,
    seq: int,
    kind: str,
    frame_hash: bytes,
    record: Mapping[str, Any],
    written_ms: int,
) -> None:
    """Reflect one journal frame (a no-op for every kind but `agent_tier`)."""
    if kind != KIND:
        return
    signatures = record.get("signatures") or []
    signer = bytes.fromhex(signatures[0]["agent_id"]) if signatures else None
    conn.execute(
        f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            frame_hash,
            bytes.fromhex(record["agent_id"]),
            int(SourceClass[record["max_tier"]]),
            record.get("name"),
            record.get("note"),
            signer,
            int(record["timestamp"]),
            written_ms,
        ),
    )


def _in_force(known_at_ms: int | None) -> tuple[str, list[Any]]:
    """SQL (and its bindings) true for the row of `r` in force at `known_at_ms`."""
    params: list[Any] = []
    time_clause = ""
    if known_at_ms is not None:
        time_clause = " AND n.written_ms <= ?"
        params.append(known_at_ms)
    sql = f"r.seq = (SELECT max(n.seq) FROM {TABLE} n WHERE n.agent_id = r.agent_id{time_clause})"
    return sql, params


def registered_tiers(
    conn: apsw.Connection, agent_ids: Iterable[bytes], known_at_ms: int | None = None
) -> dict[bytes, int]:
    """The registered max tier of each agent among `agent_ids` (unregistered: absent)."""
    wanted = list(dict.fromkeys(agent_ids))
    found: dict[bytes, int] = {}
    for start in range(0, len(wanted), MAX_PER_QUERY):
        chunk = wanted[start : start + MAX_PER_QUERY]
        in_force, params = _in_force(known_at_ms)
        marks = ",".join("?" * len(chunk))
        rows = fetchall(
            conn,
            f"SELECT r.agent_id, r.max_tier FROM {TABLE} r "
            f"WHERE r.agent_id IN ({marks}) AND {in_force}",
            (*chunk, *params),
        )
        found.update((bytes(agent), int(tier)) for agent, tier in rows)
    return found


def has_registrations(conn: apsw.Connection) -> bool:
    return bool(fetchall(conn, f"SELECT 1 FROM {TABLE} LIMIT 1"))


def _row_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    seq, frame_hash, agent, tier, name, note, by, timestamp, written_ms = row
    return {
        "agent_id": bytes(agent).hex(),
        "max_tier": SourceClass(int(tier)).name,
        "tier": int(tier),
        "name": name,
        "note": note,
        "registered_by": bytes(by).hex() if by is not None else None,
        "timestamp": int(timestamp),
        "written_ms": int(written_ms),
        "seq": int(seq),
        "hash": bytes(frame_hash).hex(),
    }


def list_registrations(
    conn: apsw.Connection, *, after: bytes | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Registrations in force, by agent id (keyset pagination on `after`)."""
    in_force, params = _in_force(None)
    where = in_force
    if after is not None:
        where += " AND r.agent_id > ?"
        params.append(after)
    rows = fetchall(
        conn,
        f"SELECT {', '.join('r.' + c.strip() for c in _COLUMNS.split(','))} FROM {TABLE} r "
        f"WHERE {where} ORDER BY r.agent_id LIMIT ?",
        (*params, limit),
    )
    return [_row_dict(row) for row in rows]


def agent_history(conn: apsw.Connection, agent_id: bytes) -> list[dict[str, Any]]:
    """Every registration of one agent, oldest first (the last is in force)."""
    rows = fetchall(
        conn, f"SELECT {_COLUMNS} FROM {TABLE} WHERE agent_id = ? ORDER BY seq", (agent_id,)
    )
    return [_row_dict(row) for row in rows]


def sources_by_seq(conn: apsw.Connection, seqs: Iterable[int]) -> dict[int, str | None]:
    """The `source` of each assertion among `seqs` (not in the covering lens index)."""
    wanted = list(dict.fromkeys(seqs))
    found: dict[int, str | None] = {}
    for start in range(0, len(wanted), MAX_PER_QUERY):
        chunk = wanted[start : start + MAX_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows = fetchall(conn, f"SELECT seq, source FROM assertions WHERE seq IN ({marks})", chunk)
        found.update((int(seq), None if source is None else str(source)) for seq, source in rows)
    return found


def cosigners_of(conn: apsw.Connection, hashes: Iterable[bytes]) -> dict[bytes, list[bytes]]:
    """Signers after the first of each assertion among `hashes` (the `cosigners` table)."""
    wanted = list(dict.fromkeys(hashes))
    found: dict[bytes, list[bytes]] = {}
    for start in range(0, len(wanted), MAX_PER_QUERY):
        chunk = wanted[start : start + MAX_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows = fetchall(
            conn,
            f"SELECT assertion_hash, agent_id FROM cosigners WHERE assertion_hash IN ({marks})",
            chunk,
        )
        for assertion, agent in rows:
            found.setdefault(bytes(assertion), []).append(bytes(agent))
    return found


_UNREGISTERED_ABOVE = """
SELECT count(*) FROM assertions a
WHERE a.tier < ? AND NOT EXISTS (
  SELECT 1 FROM agent_tiers r
  WHERE r.agent_id = a.agent_id AND r.max_tier <= a.tier
    AND r.seq = (SELECT max(n.seq) FROM agent_tiers n WHERE n.agent_id = r.agent_id)
)
"""


def registry_summary(conn: apsw.Connection, ceiling: int) -> tuple[int, int] | None:
    """(agents registered, claims declaring a tier above `ceiling` by an unregistered
    first signer) for the doctor; None on a schema older than migration 0005."""
    if not fetchall(conn, "SELECT 1 FROM sqlite_master WHERE name = 'agent_tiers'"):
        return None
    agents = int(fetchall(conn, "SELECT count(DISTINCT agent_id) FROM agent_tiers")[0][0])
    above = int(fetchall(conn, _UNREGISTERED_ABOVE, (ceiling,))[0][0])
    return agents, above
