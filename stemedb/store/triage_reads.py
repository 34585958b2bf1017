"""SQL for the triage index (stemedb.service.triage): only contested pairs are read.

A pair is contested once two different values were claimed for it. The first
fold finds those pairs with one GROUP BY over the `assertions_lens` index (C
speed, no Python per uncontested row) and reads only their rows; afterwards each
new assertion asks the same index whether its pair holds another value. So the
index holds nothing for the (usually many) pairs nobody disagrees about.

Row shape everywhere: (seq, subject, predicate, value_key, confidence, tier,
timestamp, superseded, agent_id, source, cosigners), where superseded counts
only supersessions up to a given seq (the ones the caller has already folded),
and the last three are what the read-time tier cap needs (stemedb.service.
tier_policy): the first signer, the cited source and the other signers' ids as
comma-separated hex (NULL when none).
"""

from __future__ import annotations

import apsw

Row = tuple[int, str, str, str, float, int, int, int, bytes | None, str | None, str | None]

_SIGNERS = (
    "a.agent_id, a.source, "
    "(SELECT group_concat(hex(c.agent_id)) FROM cosigners c WHERE c.assertion_hash = a.hash)"
)
_COLUMNS = (
    "a.seq, a.subject, a.predicate, a.value_key, a.confidence, a.tier, a.timestamp, "
    "EXISTS (SELECT 1 FROM supersessions s WHERE s.target_hash = a.hash AND s.seq <= ?), "
    + _SIGNERS
)

CONTESTED_ROWS = (
    "WITH c AS (SELECT subject, predicate FROM assertions WHERE seq <= ? "
    "GROUP BY subject, predicate HAVING MIN(value_key) <> MAX(value_key)) "
    f"SELECT {_COLUMNS} FROM c JOIN assertions a "
    "ON a.subject = c.subject AND a.predicate = c.predicate WHERE a.seq <= ?"
)

PAIR_ROWS = (
    f"SELECT {_COLUMNS} FROM assertions a WHERE a.subject = ? AND a.predicate = ? AND a.seq <= ?"
)

OTHER_VALUE = (
    "SELECT 1 FROM assertions WHERE subject = ? AND predicate = ? AND value_key <> ? "
    "AND seq <= ? LIMIT 1"
)

ASSERTIONS_AFTER = (
    "SELECT a.seq, a.subject, a.predicate, a.value_key, a.confidence, a.tier, a.timestamp, 0, "
    f"{_SIGNERS} FROM assertions a WHERE a.seq > ? ORDER BY a.seq LIMIT ?"
)

# The first supersession of each target only (a second one changes nothing), with
# the target's row so its weight can be taken off its pair; at most up to `until`.
SUPERSESSIONS_AFTER = (
    "SELECT s.seq, a.subject, a.predicate, a.value_key, a.confidence, a.tier, a.timestamp, 1, "
    f"{_SIGNERS} FROM supersessions s JOIN assertions a ON a.hash = s.target_hash "
    "WHERE s.seq > ? AND s.seq <= ? AND NOT EXISTS (SELECT 1 FROM supersessions e "
    "WHERE e.target_hash = s.target_hash AND e.seq < s.seq) ORDER BY s.seq LIMIT ?"
)


# The registry of agent tiers (stemedb.store.agent_tiers): its newest row tells a
# request whether a registration arrived since the index capped its tiers.
REGISTRY_HEAD = "SELECT COALESCE(MAX(seq), 0) FROM agent_tiers"
REGISTRY_IN_FORCE = (
    "SELECT r.agent_id, r.max_tier FROM agent_tiers r "
    "WHERE r.seq = (SELECT MAX(n.seq) FROM agent_tiers n WHERE n.agent_id = r.agent_id)"
)
REGISTERED_AFTER = "SELECT DISTINCT agent_id FROM agent_tiers WHERE seq > ?"
PAIRS_SIGNED_BY = (
    "SELECT subject, predicate FROM assertions WHERE agent_id = ? AND seq <= ? "
    "UNION SELECT a.subject, a.predicate FROM cosigners c JOIN assertions a "
    "ON a.hash = c.assertion_hash WHERE c.agent_id = ? AND a.seq <= ?"
)


def registry_head(conn: apsw.Connection) -> int:
    row = conn.execute(REGISTRY_HEAD).fetchone()
    return int(row[0] if row else 0)


def registry(conn: apsw.Connection) -> dict[bytes, int]:
    """Every registered agent's max tier in force now (admins register few agents)."""
    return {bytes(agent): int(tier) for agent, tier in conn.execute(REGISTRY_IN_FORCE)}


def registered_after(conn: apsw.Connection, seq: int) -> list[bytes]:
    """Agents whose registration changed after journal seq `seq`."""
    return [bytes(r[0]) for r in conn.execute(REGISTERED_AFTER, (seq,))]


def pairs_signed_by(conn: apsw.Connection, agent: bytes, max_a: int) -> set[tuple[str, str]]:
    """The (subject, predicate) pairs with a claim up to `max_a` signed or co-signed by `agent`."""
    rows = conn.execute(PAIRS_SIGNED_BY, (agent, max_a, agent, max_a))
    return {(str(s), str(p)) for s, p in rows}


def heads(conn: apsw.Connection) -> tuple[int, int]:
    """(newest assertion seq, newest supersession seq), 0 when empty: two rowid lookups."""
    a = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM assertions").fetchone()
    s = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM supersessions").fetchone()
    return int(a[0] if a else 0), int(s[0] if s else 0)


def newest_claim(conn: apsw.Connection) -> int:
    """The newest claim time (a full index scan: the first fold only)."""
    t = conn.execute("SELECT COALESCE(MAX(timestamp), 0) FROM assertions").fetchone()
    return int(t[0] if t else 0)


def contested_rows(conn: apsw.Connection, max_a: int, max_s: int) -> apsw.Cursor:
    """Every row of every contested pair up to assertion seq `max_a` (a cursor: streamed)."""
    return conn.execute(CONTESTED_ROWS, (max_a, max_s, max_a))  # in the order of the ?s


def pair_rows(
    conn: apsw.Connection, subject: str, predicate: str, max_a: int, max_s: int
) -> list[Row]:
    rows = conn.execute(PAIR_ROWS, (max_s, subject, predicate, max_a))
    return [tuple(r) for r in rows]  # type: ignore[misc]


def has_other_value(
    conn: apsw.Connection, subject: str, predicate: str, value_key: str, max_a: int
) -> bool:
    return conn.execute(OTHER_VALUE, (subject, predicate, value_key, max_a)).fetchone() is not None


def assertions_after(conn: apsw.Connection, after: int, limit: int) -> list[Row]:
    return [tuple(r) for r in conn.execute(ASSERTIONS_AFTER, (after, limit))]  # type: ignore[misc]


def supersessions_after(conn: apsw.Connection, after: int, until: int, limit: int) -> list[Row]:
    rows = conn.execute(SUPERSESSIONS_AFTER, (after, until, limit))
    return [tuple(r) for r in rows]  # type: ignore[misc]
