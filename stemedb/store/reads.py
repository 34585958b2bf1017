"""Read queries other than candidate selection: records, lineage, catalogue, feed.

Plain functions of a read connection; they return plain Python values and
know nothing of HTTP.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

import apsw

from stemedb.store.journal import CorruptFrame, Frame, checked_frames
from stemedb.store.projections import TrustState, fold_outcome
from stemedb.store.schema import fetchall


def _one(conn: apsw.Connection, sql: str, params: Iterable[Any] = ()) -> tuple[Any, ...] | None:
    rows = fetchall(conn, sql, tuple(params))
    return tuple(rows[0]) if rows else None


def frame_by_hash(conn: apsw.Connection, frame_hash: bytes) -> Frame | None:
    row = _one(
        conn,
        "SELECT seq, CAST(kind AS BLOB), hash, CAST(body AS BLOB), written_ms, chain"
        " FROM journal WHERE hash = ?",
        (frame_hash,),
    )
    return Frame.from_row(row) if row else None


def assertion_view(frame: Frame, tier: int, superseded: bool) -> dict[str, Any]:
    """A stored assertion as the API shows it: the record plus server fields."""
    record: dict[str, Any] = json.loads(frame.body)
    record.pop("kind", None)
    signatures = record.get("signatures") or []
    record.update(
        hash=frame.hash.hex(),
        seq=frame.seq,
        written_at=frame.written_ms,
        tier=tier,
        agent_id=signatures[0]["agent_id"] if signatures else None,
        superseded=superseded,
    )
    return record


_ASSERTION_BY = (
    "SELECT j.seq, CAST(j.kind AS BLOB), j.hash, CAST(j.body AS BLOB), j.written_ms, j.chain,"
    " a.tier,"
    " EXISTS (SELECT 1 FROM supersessions s WHERE s.target_hash = a.hash)"
    " FROM assertions a JOIN journal j ON j.seq = a.seq WHERE "
)


def assertion_by_hash(conn: apsw.Connection, assertion_hash: bytes) -> dict[str, Any] | None:
    row = _one(conn, _ASSERTION_BY + "a.hash = ?", (assertion_hash,))
    return assertion_view(Frame.from_row(row[:6]), int(row[6]), bool(row[7])) if row else None


def assertion_subject(conn: apsw.Connection, assertion_hash: bytes) -> str | None:
    """The subject of an assertion, without decoding its frame (the scope check's need)."""
    row = _one(conn, "SELECT subject FROM assertions WHERE hash = ?", (assertion_hash,))
    return str(row[0]) if row else None


def assertion_at(
    conn: apsw.Connection, seq: int, tier: int, superseded: bool
) -> dict[str, Any] | None:
    """`assertion_by_hash` for an assertion already read in this snapshot: its seq,
    tier and superseded flag are known, so only its frame is fetched. The flag is
    the caller's: a lens query passes the one its time filters computed."""
    row = _one(
        conn,
        "SELECT seq, CAST(kind AS BLOB), hash, CAST(body AS BLOB), written_ms, chain"
        " FROM journal WHERE seq = ?",
        (seq,),
    )
    return assertion_view(Frame.from_row(row), tier, superseded) if row else None


def assertions_by_seqs(conn: apsw.Connection, seqs: list[int]) -> list[dict[str, Any]]:
    out = []
    for seq in seqs:
        row = _one(conn, _ASSERTION_BY + "a.seq = ?", (seq,))
        if row:
            out.append(assertion_view(Frame.from_row(row[:6]), int(row[6]), bool(row[7])))
    return out


def _in_list(values: list[bytes]) -> str:
    return ",".join("?" * len(values))


def vote_totals(conn: apsw.Connection, hashes: Iterable[bytes]) -> dict[bytes, float]:
    keys = list(hashes)
    if not keys:
        return {}
    rows = fetchall(
        conn,
        f"SELECT assertion_hash, total FROM vote_totals WHERE assertion_hash IN ({_in_list(keys)})",
        keys,
    )
    return {bytes(r[0]): float(r[1]) for r in rows}


def trust_scores(
    conn: apsw.Connection, agents: Iterable[bytes]
) -> dict[bytes, tuple[float, float]]:
    keys = list(agents)
    if not keys:
        return {}
    rows = fetchall(
        conn,
        f"SELECT agent_id, score, last_updated FROM trust WHERE agent_id IN ({_in_list(keys)})",
        keys,
    )
    return {bytes(r[0]): (float(r[1]), float(r[2])) for r in rows}


def assertions_flagged(conn: apsw.Connection, rows: list[tuple[int, bool]]) -> list[dict[str, Any]]:
    """Assertions by seq, each with the `superseded` flag its selection computed.

    A time-travel listing decides "superseded" with the supersessions visible
    at `as_of` / `known_at`; the view shows that flag, not today's.
    """
    out = []
    for seq, superseded in rows:
        row = _one(conn, _ASSERTION_BY + "a.seq = ?", (seq,))
        if row:
            out.append(assertion_view(Frame.from_row(row[:6]), int(row[6]), superseded))
    return out


# ---- known_at: state as of a system time, from the history tables (migration 0004) ----


def vote_totals_at(
    conn: apsw.Connection, hashes: Iterable[bytes], known_at_ms: int
) -> dict[bytes, float]:
    """`vote_totals` as a reader saw it at `known_at_ms`.

    Among the votes written by then, each agent's latest one (by claim time,
    then seq: the rule of the `votes` projection) counts; an assertion with any
    such vote has an entry, as in `vote_totals`.
    """
    keys = list(hashes)
    if not keys:
        return {}
    rows = fetchall(
        conn,
        "SELECT assertion_hash, agent_id, weight, timestamp, seq FROM vote_history"
        f" WHERE assertion_hash IN ({_in_list(keys)}) AND written_ms <= ?",
        [*keys, known_at_ms],
    )
    latest: dict[tuple[bytes, bytes], tuple[int, int, float]] = {}
    for target, agent, weight, timestamp, seq in rows:
        key = (bytes(target), bytes(agent))
        vote = (int(timestamp), int(seq), float(weight))
        if key not in latest or vote[:2] > latest[key][:2]:
            latest[key] = vote
    weights: dict[bytes, list[float]] = {}
    for (target, _agent), vote in sorted(latest.items()):
        weights.setdefault(target, []).append(vote[2])
    return {target: math.fsum(ws) for target, ws in weights.items()}


def trust_scores_at(
    conn: apsw.Connection, agents: Iterable[bytes], known_at_ms: int
) -> dict[bytes, tuple[float, float]]:
    """`trust_scores` as of `known_at_ms`: each agent's outcomes written by then,
    replayed in seq order with the projection's own fold."""
    keys = list(agents)
    if not keys:
        return {}
    rows = fetchall(
        conn,
        "SELECT agent_id, accurate, timestamp FROM outcome_history"
        f" WHERE agent_id IN ({_in_list(keys)}) AND written_ms <= ? ORDER BY agent_id, seq",
        [*keys, known_at_ms],
    )
    states: dict[bytes, TrustState] = {}
    for agent, accurate, timestamp in rows:
        key = bytes(agent)
        states[key] = fold_outcome(states.get(key), bool(accurate), int(timestamp))
    return {a: (st.score, float(st.last_updated)) for a, st in states.items()}


def resolve_alias_at(conn: apsw.Connection, path: str, known_at_ms: int) -> str | None:
    """The canonical path `path` mapped to at `known_at_ms` (latest alias record by then)."""
    row = _one(
        conn,
        "SELECT canonical FROM alias_history WHERE alias = ? AND written_ms <= ?"
        " ORDER BY seq DESC LIMIT 1",
        (path, known_at_ms),
    )
    return str(row[0]) if row else None


def cosigners_of(conn: apsw.Connection, hashes: Iterable[bytes]) -> dict[bytes, tuple[bytes, ...]]:
    """Signers after the first of each assertion that has any (most have none)."""
    keys = list(hashes)
    if not keys:
        return {}
    rows = fetchall(
        conn,
        "SELECT assertion_hash, agent_id FROM cosigners"
        f" WHERE assertion_hash IN ({_in_list(keys)}) ORDER BY assertion_hash, agent_id",
        keys,
    )
    out: dict[bytes, tuple[bytes, ...]] = {}
    for target, agent in rows:
        out[bytes(target)] = (*out.get(bytes(target), ()), bytes(agent))
    return out


def superseded_epochs(conn: apsw.Connection, known_at_ms: int | None = None) -> frozenset[bytes]:
    if known_at_ms is None:
        rows = fetchall(conn, "SELECT epoch FROM epoch_superseded")
    else:
        rows = fetchall(
            conn, "SELECT epoch FROM epoch_superseded WHERE written_ms <= ?", (known_at_ms,)
        )
    return frozenset(bytes(r[0]) for r in rows)


def resolve_alias(conn: apsw.Connection, path: str) -> str | None:
    row = _one(conn, "SELECT canonical FROM aliases WHERE alias = ?", (path,))
    return str(row[0]) if row else None


def aliases_of(conn: apsw.Connection, canonical: str) -> list[str]:
    rows = fetchall(
        conn, "SELECT alias FROM aliases WHERE canonical = ? ORDER BY alias", (canonical,)
    )
    return [str(r[0]) for r in rows]


def epochs(conn: apsw.Connection, epoch_id: bytes | None = None) -> list[dict[str, Any]]:
    sql = (
        "SELECT e.id, e.seq, e.name, e.description, e.supersedes, e.timestamp, e.written_ms,"
        " s.by_epoch FROM epochs e LEFT JOIN epoch_superseded s ON s.epoch = e.id"
    )
    params: tuple[Any, ...] = ()
    if epoch_id is not None:
        sql += " WHERE e.id = ?"
        params = (epoch_id,)
    rows = fetchall(conn, sql + " ORDER BY e.seq", params)
    return [
        {
            "id": bytes(r[0]).hex(),
            "seq": int(r[1]),
            "name": r[2],
            "description": r[3],
            "supersedes": json.loads(r[4]),
            "timestamp": int(r[5]),
            "written_at": int(r[6]),
            "superseded": r[7] is not None,
            "superseded_by": bytes(r[7]).hex() if r[7] is not None else None,
        }
        for r in rows
    ]


def concepts(conn: apsw.Connection, prefix: str | None) -> list[dict[str, Any]]:
    """Child segments directly under `prefix` (or top-level) with assertion counts."""
    if prefix:
        rows = fetchall(
            conn,
            "SELECT subject, count(*) FROM assertions WHERE subject >= ? AND subject < ?"
            " GROUP BY subject",
            (prefix + "/", prefix + "0"),
        )
        cut = len(prefix) + 1
    else:
        rows = fetchall(conn, "SELECT subject, count(*) FROM assertions GROUP BY subject")
        cut = 0
    children: dict[str, dict[str, Any]] = {}
    for subject, count in rows:
        rest = str(subject)[cut:]
        if not prefix and "://" in rest:
            scheme, _, tail = rest.partition("://")
            segment = f"{scheme}://{tail.split('/', 1)[0]}"
            has_more = "/" in tail
        else:
            segment, _, remainder = rest.partition("/")
            has_more = bool(remainder)
        path = f"{prefix}/{segment}" if prefix else segment
        entry = children.setdefault(
            segment, {"segment": segment, "path": path, "assertion_count": 0, "has_children": False}
        )
        entry["assertion_count"] += int(count)
        entry["has_children"] = entry["has_children"] or has_more
    return [children[k] for k in sorted(children)]


def children_of(conn: apsw.Connection, parent_hash: bytes) -> list[str]:
    rows = fetchall(
        conn, "SELECT hash FROM assertions WHERE parent_hash = ? ORDER BY seq", (parent_hash,)
    )
    return [bytes(r[0]).hex() for r in rows]


def supersessions_of(conn: apsw.Connection, target: bytes) -> list[dict[str, Any]]:
    rows = fetchall(
        conn,
        "SELECT hash, seq, replacement_hash, type, reason, timestamp FROM supersessions"
        " WHERE target_hash = ? ORDER BY seq",
        (target,),
    )
    return [
        {
            "hash": bytes(r[0]).hex(),
            "seq": int(r[1]),
            "replacement_hash": bytes(r[2]).hex() if r[2] is not None else None,
            "type": r[3],
            "reason": r[4],
            "timestamp": int(r[5]),
        }
        for r in rows
    ]


def vote_summary(conn: apsw.Connection, assertion_hash: bytes) -> dict[str, Any]:
    row = _one(
        conn, "SELECT count, total FROM vote_totals WHERE assertion_hash = ?", (assertion_hash,)
    )
    return {"count": int(row[0]), "total": float(row[1])} if row else {"count": 0, "total": 0.0}


def same_source(conn: apsw.Connection, source_hash: bytes, exclude: bytes) -> list[str]:
    rows = fetchall(
        conn,
        "SELECT hash FROM assertions WHERE source_hash = ? AND hash <> ? ORDER BY seq LIMIT 100",
        (source_hash, exclude),
    )
    return [bytes(r[0]).hex() for r in rows]


def feed(
    conn: apsw.Connection, after: int, limit: int, kinds: frozenset[str] | None
) -> tuple[list[Frame], int]:
    """Frames after `after` in order; returns them and the next cursor (gap-free)."""
    frames: list[Frame] = []
    last = after
    for frame in checked_frames(conn, after=after, batch=max(limit, 100)):
        last = frame.seq
        if frame.seq == 0:
            continue
        if kinds is None or frame.kind in kinds:
            frames.append(frame)
            if len(frames) >= limit:
                break
        elif last - after >= limit * 50:
            break  # bounded scan when filtering; the cursor still advances
    return frames, last


def head_seq(conn: apsw.Connection) -> int:
    row = _one(conn, "SELECT max(seq) FROM journal")
    return int(row[0]) if row and row[0] is not None else -1


def export_frames(
    conn: apsw.Connection, after: int, kinds: frozenset[str] | None
) -> Iterator[Frame]:
    for frame in checked_frames(conn, after=max(after, 0)):
        if kinds is None or frame.kind in kinds:
            yield frame


def export_chunk(
    conn: apsw.Connection,
    after: int,
    until: int,
    kinds: frozenset[str] | None,
    limit: int,
    max_bytes: int = 1 << 20,
) -> tuple[list[Frame], int]:
    """One chunk of an export: matching frames in (`after`, `until`], at most
    `limit` of them and about `max_bytes` of bodies (memory per chunk is bounded).

    Returns them and the seq scanned up to (the next chunk's `after`); the scan
    is bounded even when `kinds` filters out most frames. `until` is fixed by
    the caller at the start of the export, so an export never chases new writes.
    """
    frames: list[Frame] = []
    size = 0
    last = after
    try:
        for frame in checked_frames(conn, max(after, 0), until, batch=min(limit, 64)):
            last = frame.seq
            if kinds is None or frame.kind in kinds:
                frames.append(frame)
                size += len(frame.body)
                if len(frames) >= limit or size >= max_bytes:
                    break
            elif last - after >= limit * 50:
                break
        else:
            last = until  # nothing more in range
    except CorruptFrame as exc:  # hand out the whole frames before it; the next chunk fails
        if exc.seq is None or exc.seq - 1 <= after:
            raise
        return frames, exc.seq - 1
    return frames, last
