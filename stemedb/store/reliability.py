"""Reads behind the `truth` lens: what the agents of a group said elsewhere.

The lens learns each agent's reliability from its other claims, so before it
runs the service reads, for each agent, the (subject, predicate) pairs of its
newest claims (first-signed through `assertions_by_agent`, co-signed through
`cosigners_by_agent`, migration 0007), under the query's `as_of` and
`known_at`. Both reads are bounded per agent; the caller bounds the rest.
"""

from __future__ import annotations

from collections.abc import Iterable

import apsw

from stemedb.store.schema import fetchall

Pair = tuple[str, str]


def _time_clause(as_of: int | None, known_at_ms: int | None, params: list[object]) -> str:
    clauses = []
    if as_of is not None:
        clauses.append("a.timestamp <= ?")
        params.append(as_of)
    if known_at_ms is not None:
        clauses.append("a.written_ms <= ?")
        params.append(known_at_ms)
    return "".join(f" AND {c}" for c in clauses)


def recent_pairs(
    conn: apsw.Connection,
    agent: bytes,
    *,
    as_of: int | None,
    known_at_ms: int | None,
    limit: int,
) -> list[Pair]:
    """The pairs of `agent`'s newest claims (by journal order), at most `limit` claims.

    Newest by `seq`, so the read walks an index backwards and stops after
    `limit` matches; claims the time filters hide are skipped, never counted.
    """
    params: list[object] = [agent]
    when = _time_clause(as_of, known_at_ms, params)
    params.append(limit)
    own = fetchall(
        conn,
        "SELECT a.subject, a.predicate, a.seq FROM assertions AS a"
        f" WHERE a.agent_id = ?{when} ORDER BY a.seq DESC LIMIT ?",
        tuple(params),
    )
    params = [agent]
    when = _time_clause(as_of, known_at_ms, params)
    params.append(limit)
    cosigned = fetchall(
        conn,
        "SELECT a.subject, a.predicate, a.seq FROM cosigners AS c"
        " JOIN assertions AS a ON a.hash = c.assertion_hash"
        f" WHERE c.agent_id = ?{when} ORDER BY a.seq DESC LIMIT ?",
        tuple(params),
    )
    rows = sorted([*own, *cosigned], key=lambda r: -int(r[2]))[:limit]
    return [(str(r[0]), str(r[1])) for r in rows]


def cosigners_of(
    conn: apsw.Connection, hashes: Iterable[bytes], chunk: int = 500
) -> dict[bytes, tuple[bytes, ...]]:
    """Signers after the first of each assertion, read in chunks (the neighbourhood is large)."""
    keys = sorted(set(hashes))
    out: dict[bytes, tuple[bytes, ...]] = {}
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        rows = fetchall(
            conn,
            "SELECT assertion_hash, agent_id FROM cosigners"
            f" WHERE assertion_hash IN ({','.join('?' * len(part))})"
            " ORDER BY assertion_hash, agent_id",
            tuple(part),
        )
        for target, agent in rows:
            out[bytes(target)] = (*out.get(bytes(target), ()), bytes(agent))
    return out


def votes_on(
    conn: apsw.Connection,
    hashes: Iterable[bytes],
    *,
    as_of: int | None,
    known_at_ms: int | None,
    chunk: int = 500,
) -> list[tuple[bytes, bytes, float, int]]:
    """(assertion, voter, weight, timestamp) of each signed voter's latest vote on each
    assertion (by claim time, then seq: the `votes` projection's rule), among the
    votes cast by `as_of` and written by `known_at_ms`."""
    keys = sorted(set(hashes))
    latest: dict[tuple[bytes, bytes], tuple[int, int, float]] = {}
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        params: list[object] = list(part)
        sql = (
            "SELECT assertion_hash, agent_id, weight, timestamp, seq FROM vote_history"
            f" WHERE assertion_hash IN ({','.join('?' * len(part))}) AND length(agent_id) = 32"
        )
        if as_of is not None:
            sql += " AND timestamp <= ?"
            params.append(as_of)
        if known_at_ms is not None:
            sql += " AND written_ms <= ?"
            params.append(known_at_ms)
        for target, agent, weight, timestamp, seq in fetchall(conn, sql, tuple(params)):
            key = (bytes(target), bytes(agent))
            vote = (int(timestamp), int(seq), float(weight))
            if key not in latest or vote[:2] > latest[key][:2]:
                latest[key] = vote
    return [(t, a, w, ts) for (t, a), (ts, _seq, w) in sorted(latest.items())]
