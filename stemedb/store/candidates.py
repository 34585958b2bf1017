"""Candidate selection: the hot read path of every lens query.

Every column a lens needs lives in the `assertions_lens` index, so reading the
candidates of a (subject, predicate) pair never touches the table; only the
supersession check probes its own small index.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import apsw

# `seq` is the table's rowid, so every index carries it: still covering.
CANDIDATE_COLUMNS = (
    "subject, predicate, hash, value_key, confidence, tier, timestamp, agent_id, "
    "lifecycle, epoch, written_ms, seq"
)


@dataclass(frozen=True)
class CandidateFilter:
    """Filters of lenses.md step 2 and 3, already resolved and typed (no HTTP here)."""

    subjects: tuple[str, ...] = ()
    prefix: bool = False
    predicate: str | None = None
    lifecycles: tuple[str, ...] | None = None
    epoch: bytes | None = None
    tiers: tuple[int, ...] | None = None
    agent_id: bytes | None = None
    as_of: int | None = None
    known_at_ms: int | None = None
    include_superseded: bool = False


class CandidateRow(NamedTuple):
    """One candidate as stored (a tuple: built straight from the row, no per-field work).

    `superseded` honours the filter's `as_of` / `known_at` like the candidate
    selection does.
    """

    subject: str
    predicate: str
    hash: bytes
    value_key: str
    confidence: float
    tier: int
    timestamp: int
    agent_id: bytes | None
    lifecycle: str
    epoch: bytes | None
    written_ms: int
    seq: int
    superseded: bool


def _subject_clause(f: CandidateFilter, params: list[Any]) -> str:
    parts = []
    for subject in f.subjects:
        if f.prefix:
            # One index range [p, p0) (so rows come out in index order), then drop
            # siblings like "p-x" or "p.x" that sort inside it but are not under p.
            parts.append("(subject >= ? AND subject < ? AND (subject = ? OR subject >= ?))")
            params.extend((subject, subject + "0", subject, subject + "/"))
        else:
            parts.append("subject = ?")
            params.append(subject)
    return "(" + " OR ".join(parts) + ")" if parts else "1"


def where_clause(
    f: CandidateFilter, params: list[Any], *, after: tuple[str, str] | None = None
) -> str:
    """The WHERE of a candidate read; appends its bindings to `params`."""
    clauses = [_subject_clause(f, params)]
    if f.predicate is not None:
        clauses.append("predicate = ?")
        params.append(f.predicate)
    if after is not None:
        clauses.append("(subject, predicate) > (?, ?)")
        params.extend(after)
    if f.lifecycles:
        clauses.append(f"lifecycle IN ({','.join('?' * len(f.lifecycles))})")
        params.extend(f.lifecycles)
    if f.epoch is not None:
        clauses.append("epoch = ?")
        params.append(f.epoch)
    if f.tiers is not None:
        clauses.append(f"tier IN ({','.join('?' * len(f.tiers))})")
        params.extend(f.tiers)
    if f.agent_id is not None:
        clauses.append("agent_id = ?")
        params.append(f.agent_id)
    if f.as_of is not None:
        clauses.append("timestamp <= ?")
        params.append(f.as_of)
    if f.known_at_ms is not None:
        clauses.append("written_ms <= ?")
        params.append(f.known_at_ms)
    return " AND ".join(clauses)


def superseded_expr(f: CandidateFilter, params: list[Any], table: str = "assertions") -> str:
    """SQL boolean: this assertion is the target of a supersession visible under the filters."""
    conds = [f"s.target_hash = {table}.hash"]
    if f.as_of is not None:
        conds.append("s.timestamp <= ?")
        params.append(f.as_of)
    if f.known_at_ms is not None:
        conds.append("s.written_ms <= ?")
        params.append(f.known_at_ms)
    return f"EXISTS (SELECT 1 FROM supersessions s WHERE {' AND '.join(conds)})"


def candidate_sql(
    f: CandidateFilter, *, after: tuple[str, str] | None = None
) -> tuple[str, list[Any]]:
    params: list[Any] = []
    superseded = superseded_expr(f, params)
    where = where_clause(f, params, after=after)
    sql = (
        f"SELECT {CANDIDATE_COLUMNS}, {superseded} AS superseded FROM assertions "
        f"WHERE {where} ORDER BY subject, predicate, timestamp DESC"
    )
    return sql, params


def iter_groups(
    conn: apsw.Connection, f: CandidateFilter, *, after: tuple[str, str] | None = None
) -> Iterator[tuple[str, str, list[CandidateRow]]]:
    """Yield (subject, predicate, candidates) groups in key order, lazily.

    The columns' declared types (NOT NULL TEXT/INTEGER/REAL, BLOB or NULL) are
    what SQLite hands back, so rows become CandidateRows as they are; only the
    EXISTS flag (0/1) is turned into a bool.
    """
    sql, params = candidate_sql(f, after=after)
    new_row = tuple.__new__
    subject: str | None = None
    predicate: str | None = None
    group: list[CandidateRow] = []
    for row in conn.execute(sql, params):
        s, p, h, v, c, t, ts, a, lc, e, w, seq, sup = row
        if s != subject or p != predicate:
            if subject is not None and predicate is not None:
                yield subject, predicate, group
            subject, predicate, group = s, p, []
        group.append(new_row(CandidateRow, (s, p, h, v, c, t, ts, a, lc, e, w, seq, sup == 1)))
    if subject is not None and predicate is not None:
        yield subject, predicate, group


def list_assertion_seqs(
    conn: apsw.Connection, f: CandidateFilter, *, after_seq: int, limit: int
) -> list[tuple[int, bool]]:
    """Matching assertions in seq order (keyset pagination): (seq, superseded)."""
    params: list[Any] = []
    superseded = superseded_expr(f, params)
    where = where_clause(f, params)
    sql = f"SELECT seq, {superseded} AS sup FROM assertions WHERE {where} AND seq > ?"
    params.append(after_seq)
    if not f.include_superseded:
        sql = f"SELECT seq, sup FROM ({sql}) WHERE sup = 0"
    sql += " ORDER BY seq LIMIT ?"
    params.append(limit)
    return [(int(row[0]), bool(row[1])) for row in conn.execute(sql, params)]
