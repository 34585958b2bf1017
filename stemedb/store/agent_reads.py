"""Reads behind `GET /v1/agents` and `GET /v1/agents/{id}`: one agent's record of work.

Everything here is read from projections the journal already feeds: `trust`
and `outcome_history` (TrustRank and its history), `agents` (first seen),
`assertions`, `cosigners` and `vote_history` (what the agent signed, each
read through an index by agent). With
`known_at_ms` every read keeps only rows written by then, so a profile can be
replayed as a reader saw it. Plain functions of a read connection; the
service relaxes trust to the reading instant (`stemedb.lenses.trust`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import apsw

from stemedb.store.projections import TrustState, fold_outcome
from stemedb.store.schema import fetchall


@dataclass(frozen=True)
class OutcomeRow:
    """One outcome record about an agent, with the stored score it left behind."""

    seq: int
    hash: bytes
    assertion_hash: str | None
    accurate: bool
    timestamp: int
    written_ms: int
    score_after: float
    updated_after: int  # the fold's last_updated after it (claim time, Unix seconds)


@dataclass(frozen=True)
class AgentCountsRow:
    claims: int  # assertions it signed first
    cosigned: int  # assertions it co-signed (a signer after the first)
    votes: int  # vote records it signed (a changed vote counts again)


def _written_by(column: str, known_at_ms: int | None) -> tuple[str, list[Any]]:
    if known_at_ms is None:
        return "", []
    return f" AND {column} <= ?", [known_at_ms]


def first_seen(
    conn: apsw.Connection, agent: bytes, known_at_ms: int | None = None
) -> tuple[int, int] | None:
    """(first_seq, first_written_ms) of the first frame the agent signed, if seen by then."""
    extra, params = _written_by("first_written_ms", known_at_ms)
    rows = fetchall(
        conn,
        f"SELECT first_seq, first_written_ms FROM agents WHERE agent_id = ?{extra}",
        [agent, *params],
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def outcomes(
    conn: apsw.Connection, agent: bytes, known_at_ms: int | None = None
) -> list[OutcomeRow]:
    """Every outcome about `agent` (written by `known_at_ms`), oldest first.

    `score_after` replays the projection's own fold, so the last row's score is
    the stored TrustRank a lens starts from.
    """
    extra, params = _written_by("o.written_ms", known_at_ms)
    rows = fetchall(
        conn,
        "SELECT o.seq, j.hash, CAST(j.body AS TEXT), o.accurate, o.timestamp, o.written_ms"
        f" FROM outcome_history o JOIN journal j ON j.seq = o.seq WHERE o.agent_id = ?{extra}"
        " ORDER BY o.seq",
        [agent, *params],
    )
    out: list[OutcomeRow] = []
    state: TrustState | None = None
    for seq, frame_hash, body, accurate, timestamp, written_ms in rows:
        state = fold_outcome(state, bool(accurate), int(timestamp))
        try:
            target = json.loads(body).get("assertion_hash")
        except (ValueError, AttributeError):
            target = None
        out.append(
            OutcomeRow(
                seq=int(seq),
                hash=bytes(frame_hash),
                assertion_hash=target if isinstance(target, str) else None,
                accurate=bool(accurate),
                timestamp=int(timestamp),
                written_ms=int(written_ms),
                score_after=state.score,
                updated_after=state.last_updated,
            )
        )
    return out


# The count queries of a profile, each by the agent's own index (migrations 0001 and
# 0010); `counts` appends the `known_at` bound. tests/store/test_agent_reads.py checks
# the plans, so a profile never scans a whole table.
COUNT_CLAIMS = "SELECT count(*) FROM assertions WHERE agent_id = ?"
COUNT_COSIGNED = (
    "SELECT count(*) FROM cosigners c JOIN assertions a ON a.hash = c.assertion_hash"
    " WHERE c.agent_id = ?"
)
COUNT_VOTES = "SELECT count(*) FROM vote_history WHERE agent_id = ?"


def counts(conn: apsw.Connection, agent: bytes, known_at_ms: int | None = None) -> AgentCountsRow:
    """How much the agent signed: claims (first signer), co-signatures, vote records."""
    extra, params = _written_by("written_ms", known_at_ms)
    extra_a, params_a = _written_by("a.written_ms", known_at_ms)
    claims = fetchall(conn, COUNT_CLAIMS + extra, [agent, *params])
    cosigned = fetchall(conn, COUNT_COSIGNED + extra_a, [agent, *params_a])
    votes = fetchall(conn, COUNT_VOTES + extra, [agent, *params])
    return AgentCountsRow(int(claims[0][0]), int(cosigned[0][0]), int(votes[0][0]))


def all_trust(conn: apsw.Connection, known_at_ms: int | None = None) -> dict[bytes, TrustState]:
    """The stored TrustRank of every agent with an outcome (as of `known_at_ms`).

    Only agents something was learned about have a row, so this is the size
    of the outcome-rated population, not of every signer.
    """
    if known_at_ms is None:
        sql = "SELECT agent_id, score, last_updated, accurate, inaccurate FROM trust"
        rows = fetchall(conn, sql)
        return {
            bytes(a): TrustState(float(s), int(u), int(good), int(bad))
            for a, s, u, good, bad in rows
        }
    states: dict[bytes, TrustState] = {}
    for agent, accurate, timestamp in fetchall(
        conn,
        "SELECT agent_id, accurate, timestamp FROM outcome_history WHERE written_ms <= ?"
        " ORDER BY agent_id, seq",
        [known_at_ms],
    ):
        key = bytes(agent)
        states[key] = fold_outcome(states.get(key), bool(accurate), int(timestamp))
    return states


def first_seen_many(conn: apsw.Connection, agents: list[bytes]) -> dict[bytes, tuple[int, int]]:
    """`first_seen` of several agents at once (a listing page)."""
    if not agents:
        return {}
    marks = ",".join("?" * len(agents))
    rows = fetchall(
        conn,
        f"SELECT agent_id, first_seq, first_written_ms FROM agents WHERE agent_id IN ({marks})",
        agents,
    )
    return {bytes(a): (int(seq), int(ms)) for a, seq, ms in rows}


def seen_agents_after(
    conn: apsw.Connection, after: bytes | None, limit: int, known_at_ms: int | None = None
) -> list[bytes]:
    """Agents first seen (by `known_at_ms`), in agent id order, after `after`."""
    clauses: list[str] = ["1"]
    params: list[Any] = []
    if after is not None:
        clauses.append("agent_id > ?")
        params.append(after)
    if known_at_ms is not None:
        clauses.append("first_written_ms <= ?")
        params.append(known_at_ms)
    rows = fetchall(
        conn,
        f"SELECT agent_id FROM agents WHERE {' AND '.join(clauses)} ORDER BY agent_id LIMIT ?",
        [*params, limit],
    )
    return [bytes(r[0]) for r in rows]
