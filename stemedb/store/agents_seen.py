"""When each signing agent was first seen: the `agents` projection, and its reads.

A fresh Ed25519 key costs nothing, so an agent's *age* — how long ago the
journal first carried its signature — is the one thing a flood of new keys
cannot fake (issue 19 item 4). `projections.apply` calls `apply` for every
frame, in the frame's transaction; migrations/0006_agents_seen.sql creates
the table and backfills it from the journal with the same rules (every
signature entry that is an object with a 64-hex-digit `agent_id`; the first
frame wins), so a reindex gives the same rows as the migration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import apsw

from stemedb.store.schema import fetchall

TABLE = "agents"
MAX_PER_QUERY = 500  # well under SQLite's bound-parameter limit
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def signer_ids(record: Mapping[str, Any]) -> list[bytes]:
    """Every well-formed signer of a record, in signature order (duplicates kept once)."""
    signatures = record.get("signatures")
    if not isinstance(signatures, list):
        return []
    found: dict[bytes, None] = {}
    for entry in signatures:
        agent = entry.get("agent_id") if isinstance(entry, dict) else None
        if isinstance(agent, str) and _HEX64.match(agent):
            found.setdefault(bytes.fromhex(agent), None)
    return list(found)


def apply(
    conn: apsw.Connection, seq: int, kind: str, record: Mapping[str, Any], written_ms: int
) -> None:
    """Note the signers of one frame; an agent already seen keeps its first frame."""
    if kind == "header":
        return
    for agent in signer_ids(record):
        conn.execute(
            f"INSERT OR IGNORE INTO {TABLE} (agent_id, first_seq, first_written_ms)"
            " VALUES (?, ?, ?)",
            (agent, seq, written_ms),
        )


def first_seen_ms(
    conn: apsw.Connection, agent_ids: Iterable[bytes], known_at_ms: int | None = None
) -> dict[bytes, int]:
    """First `written_ms` of each agent among `agent_ids` (never seen: absent).

    With `known_at_ms`, an agent first seen after that instant is absent too:
    a reader at that time had not seen it.
    """
    wanted = list(dict.fromkeys(agent_ids))
    found: dict[bytes, int] = {}
    for start in range(0, len(wanted), MAX_PER_QUERY):
        chunk = wanted[start : start + MAX_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT agent_id, first_written_ms FROM {TABLE} WHERE agent_id IN ({marks})"
        params: list[Any] = list(chunk)
        if known_at_ms is not None:
            sql += " AND first_written_ms <= ?"
            params.append(known_at_ms)
        found.update((bytes(agent), int(ms)) for agent, ms in fetchall(conn, sql, params))
    return found


def known_agents(conn: apsw.Connection, agent_ids: Iterable[bytes]) -> set[bytes]:
    """The agents among `agent_ids` the journal has already seen."""
    return set(first_seen_ms(conn, agent_ids))
