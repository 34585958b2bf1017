"""The `truth` lens's reliability table, maintained from the journal (migration 0013).

`apply` runs for every frame inside `projections.apply` (live writes, start-up
catch-up, replication and `stemedb reindex` alike): an assertion updates its
signers' voices on its pair, a vote its voter's, and the pair is re-scored
(lenses/truth_online.py); an outcome adds to its agent's evidence. `rebuild`
replays the same updates from the projections, in journal order, with every
row held in memory, so it gives the same rows faster. Both go through
`truth_rows.Rows`: loaded from SQLite on demand (live) or kept in memory
(rebuild), flushed at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import apsw

from stemedb.canonical import canonical_json
from stemedb.lenses import truth_online as online
from stemedb.lenses.truth_model import MIN_TWIN_CLAIMS
from stemedb.lenses.truth_online import AgentStats, LinkStats
from stemedb.records import SourceClass
from stemedb.store.schema import fetchall
from stemedb.store.truth_rows import Pair, Rows, Voice, VoiceKey
from stemedb.store.truth_rows import agent_rows as agent_rows
from stemedb.store.truth_rows import links_among as links_among

TABLES = ("truth_voices", "truth_agents", "truth_links")
CLAIM, VOTE = 0, 1
LINK_LIMIT = 64  # a pair with more voices neither feeds nor uses the copy counts


# ---- the updates -----------------------------------------------------------------


def _rescore(rows: Rows, pair: Pair, seq: int) -> None:
    """Score the pair with the weights the table holds now; replace each speaker's credit.

    Only clones (`truth_online.twins`) are discounted here, as in the model's
    first phase: ACCU's likelihood test needs converged accuracies, and fed
    with the online ones (low while an agent is young) it sees copying in
    every agreement and drives every agent's credit down. The query applies
    the full test to its group, with the accuracies this table converges to.

    Cost per call, for n voices on the pair: O(n log n) for the sorts, O(n) in
    Python, plus O(n²) link work only while n <= LINK_LIMIT. Agents are keyed
    by their raw ids (bytes order is the hex order `truth.py` sorts by), and
    every float is computed by the same operations in the same order as the
    lens's query, so the table is bit-for-bit the same as before (bench.truth).
    """
    voices = rows.pair(pair)
    claims: dict[bytes, Voice] = {}
    votes: list[tuple[bytes, Voice]] = []
    before: dict[bytes, Voice] = {}
    for (a, k), v in voices.items():
        if k == CLAIM:
            claims[a] = v
        else:
            votes.append((a, v))
        if v.c_value:
            before[a] = v
    speaking: dict[bytes, Voice] = dict(claims)
    if votes:  # at most one vote per agent: the order does not matter
        current = {v.hash for v in claims.values()}
        for a, v in votes:
            if a not in claims and v.weight > 0.0 and v.hash in current:
                speaking[a] = v
    agents = sorted(speaking.keys() | before.keys())
    rows.load_agents(agents)
    stats = {a: rows.agents[a][0] for a in agents}
    order = sorted(speaking)
    speakers = [(a, speaking[a].value_key) for a in order]
    weight = online.weight
    weights = {a: weight(stats[a], stats[a].tier) for a in order}
    # the pair's contribution to two agents' counts is replaced below (a pair with
    # more than LINK_LIMIT voices contributes none: O(voices²) per write)
    linking = len(speaking) <= LINK_LIMIT
    if len(before) > LINK_LIMIT:
        before_links: dict[bytes, Voice] = {}
    else:
        before_links = before
    linked = sorted(before_links.keys() | speaking.keys()) if linking else sorted(before_links)
    links = rows.links
    if len(linked) > 1:
        rows.load_pair_links(pair, linked)
    dep: dict[tuple[bytes, bytes], float] = {}
    near: set[tuple[bytes, bytes]] = set()
    if linking and len(order) > 1:
        twins, least = online.twins, MIN_TWIN_CLAIMS
        for i, a in enumerate(order):
            sa, va = stats[a], speaking[a].value_key
            for b in order[i + 1 :]:
                link = links[(a, b)]
                if link.differ or link.same < least:
                    continue  # not `near_twins`, hence not `twins` either
                near.add((a, b))
                if va == speaking[b].value_key and twins(sa, stats[b], link):
                    dep[(a, b)] = 1.0  # clones only: see the docstring
    scored = online.score_group(speakers, weights, dep)  # type: ignore[arg-type]
    is_backed = online.backed(speakers, near)  # type: ignore[arg-type]
    probs, credit = scored.probs, scored.credit
    after = {
        a: (v.value_key, probs[v.value_key], credit[a], int(is_backed[a]))  # type: ignore[index]
        for a, v in speaking.items()
    }
    # per agent: pairs, right and backed move by the difference
    for a in agents:
        old = before.get(a)
        new = after.get(a)
        s = stats[a]
        s = AgentStats(
            s.tier,
            s.pairs + (new is not None) - (old is not None),
            s.right + (new[2] if new else 0.0) - (old.credit if old else 0.0),
            s.backed + (new[3] if new else 0) - (old.backed if old else 0),
            s.outcomes_right,
            s.outcomes_wrong,
        )
        rows.set_agent(a, s, seq)
    # per two agents: (value counted before, its 1 − P; value counted now, its 1 − P)
    was = {a: (v.c_value, 1.0 - v.p_value) for a, v in before_links.items()}
    now = {a: (n[0], 1.0 - n[1]) for a, n in after.items()} if linking else {}
    _relink(rows, was, now)
    for (a, _k), v in voices.items():
        if a in after and speaking[a] is v:
            v.c_value, v.p_value, v.credit, v.backed = (
                after[a][0], after[a][1], after[a][2], after[a][3]
            )  # fmt: skip
        else:
            v.c_value, v.p_value, v.credit, v.backed = "", 0.0, 0.0, 0


Counted = dict[bytes, tuple[str, float]]  # agent -> (value counted, 1 − its probability)


def _touched(was: Counted, now: Counted) -> set[tuple[bytes, bytes]]:
    """The two-agent links a re-score can move: both counted before and the same
    value then, or both counted now and the same value now, or one of them counted
    only before (or only now) beside one counted then. Two agents that differed
    before and differ now keep their counts: most pairs, so they are never visited."""
    pairs: set[tuple[bytes, bytes]] = set()
    stay = was.keys() & now.keys()
    groups: dict[tuple[int, str], list[bytes]] = {}
    moved = any(was[a][0] != now[a][0] for a in stay)  # else one grouping is both
    for a in stay:
        groups.setdefault((0, was[a][0]), []).append(a)
        if moved:
            groups.setdefault((1, now[a][0]), []).append(a)
    for group in groups.values():
        if len(group) > 1:
            group.sort()
            for i, a in enumerate(group):
                for b in group[i + 1 :]:
                    pairs.add((a, b))
    for side in (was, now):
        for a in side.keys() - stay:
            for b in side:
                if b != a:
                    pairs.add((a, b) if a < b else (b, a))
    return pairs


def _relink(rows: Rows, was: Counted, now: Counted) -> None:
    """Replace the pair's contribution to each two agents' counts (same value, the
    probability it was false, differing values): out with `was`, in with `now`."""
    links = rows.links
    for a, b in _touched(was, now):
        oa, ob, na, nb = was.get(a), was.get(b), now.get(a), now.get(b)
        link = links[(a, b)]
        same, false, differ = link.same, link.same_false, link.differ
        if oa is not None and ob is not None:
            if oa[0] == ob[0]:
                same, false = same - 1, false - oa[1]
            else:
                differ -= 1
        if na is not None and nb is not None:
            if na[0] == nb[0]:
                same, false = same + 1, false + na[1]
            else:
                differ += 1
        if same != link.same or false != link.same_false or differ != link.differ:
            rows.set_link((a, b), LinkStats(same, false, differ))


def _newer(old: Voice | None, timestamp: int, seq: int) -> bool:
    return old is None or (timestamp, seq) > (old.timestamp, old.seq)


def _replace(voices: dict[VoiceKey, Voice], key: VoiceKey, new: Voice) -> None:
    """Put `new` in place, carrying what the old voice was credited for."""
    old = voices.get(key)
    if old is not None:
        new.c_value, new.p_value, new.credit, new.backed = (
            old.c_value, old.p_value, old.credit, old.backed
        )  # fmt: skip
    voices[key] = new


def on_assertion(
    rows: Rows,
    seq: int,
    pair: Pair,
    value_key: str,
    hash_: bytes,
    tier: int,
    timestamp: int,
    signers: Iterable[bytes],
) -> None:
    voices = rows.pair(pair)
    changed = False
    table_tier = max(tier, online.TABLE_TIER_FLOOR)
    for agent in dict.fromkeys(signers):
        s = rows.agent(agent)
        if table_tier < s.tier:
            rows.set_agent(agent, s._replace(tier=table_tier), seq)
        if _newer(voices.get((agent, CLAIM)), timestamp, seq):
            _replace(voices, (agent, CLAIM), Voice(value_key, hash_, timestamp, seq))
            changed = True
    if changed:
        _rescore(rows, pair, seq)


def on_vote(
    rows: Rows,
    seq: int,
    target: tuple[str, str, str] | None,
    target_hash: bytes,
    voter: bytes,
    weight: float,
    timestamp: int,
) -> None:
    if target is None or len(voter) != 32:
        return
    pair = (target[0], target[1])
    voices = rows.pair(pair)
    if _newer(voices.get((voter, VOTE)), timestamp, seq):
        rows.agent(voter)
        _replace(voices, (voter, VOTE), Voice(target[2], target_hash, timestamp, seq, weight))
        _rescore(rows, pair, seq)


def on_outcome(rows: Rows, seq: int, agent: bytes, accurate: bool) -> None:
    s = rows.agent(agent)
    if accurate:
        s = s._replace(outcomes_right=s.outcomes_right + 1)
    else:
        s = s._replace(outcomes_wrong=s.outcomes_wrong + 1)
    rows.set_agent(agent, s, seq)


# ---- entry points ----------------------------------------------------------------


def _target(conn: apsw.Connection, target: bytes) -> tuple[str, str, str] | None:
    found = fetchall(
        conn, "SELECT subject, predicate, value_key FROM assertions WHERE hash = ?", (target,)
    )
    return (str(found[0][0]), str(found[0][1]), str(found[0][2])) if found else None


Event = tuple[int, str, bytes, Mapping[str, Any]]
_DEFERRED: dict[int, list[Event]] = {}  # id(connection) -> frames not yet applied


@contextmanager
def deferred(conn: apsw.Connection) -> Iterator[list[Event]]:
    """Within it, `apply` only notes frames; `flush_deferred` applies them (the
    writer: once per group commit, before COMMIT) with one set of cached rows.

    Same updates, same order: the rows equal frame-by-frame application. A
    savepoint the caller rolls back must `truncate` to its `mark`.
    """
    events: list[Event] = []
    _DEFERRED[id(conn)] = events
    try:
        yield events
    finally:
        _DEFERRED.pop(id(conn), None)


def mark(conn: apsw.Connection) -> int:
    events = _DEFERRED.get(id(conn))
    return len(events) if events is not None else 0


def truncate(conn: apsw.Connection, at: int) -> None:
    """Forget frames noted after `mark` returned `at` (their savepoint rolled back)."""
    events = _DEFERRED.get(id(conn))
    if events is not None:
        del events[at:]


def flush_deferred(conn: apsw.Connection) -> None:
    events = _DEFERRED.get(id(conn))
    if not events:
        return
    rows = Rows(conn, memory=False)
    for seq, kind, frame_hash, record in events:
        _apply(conn, rows, seq, kind, frame_hash, record)
    rows.flush()
    events.clear()


def apply(
    conn: apsw.Connection, seq: int, kind: str, frame_hash: bytes, record: Mapping[str, Any],
    written_ms: int,
) -> None:  # fmt: skip
    """One journal frame's effect on the table (assertions, votes and outcomes only)."""
    if kind not in ("assertion", "vote", "outcome"):
        return
    events = _DEFERRED.get(id(conn))
    if events is not None:
        events.append((seq, kind, frame_hash, record))
        return
    rows = Rows(conn, memory=False)
    _apply(conn, rows, seq, kind, frame_hash, record)
    rows.flush()


def _apply(
    conn: apsw.Connection,
    rows: Rows,
    seq: int,
    kind: str,
    frame_hash: bytes,
    record: Mapping[str, Any],
) -> None:
    timestamp = int(record["timestamp"])
    signers = [bytes.fromhex(s["agent_id"]) for s in record.get("signatures") or []]
    if kind == "assertion":
        pair = (str(record["subject"]), str(record["predicate"]))
        tier = int(SourceClass[record["source_class"]])
        value_key = canonical_json(record["object"])
        on_assertion(rows, seq, pair, value_key, frame_hash, tier, timestamp, signers)
    elif kind == "vote":
        target = bytes.fromhex(record["assertion_hash"])
        voter = signers[0] if signers else b""
        weight = float(record["weight"])
        on_vote(rows, seq, _target(conn, target), target, voter, weight, timestamp)
    else:
        on_outcome(rows, seq, bytes.fromhex(record["agent_id"]), bool(record["accurate"]))


def clear(conn: apsw.Connection) -> None:
    for table in TABLES:
        conn.execute(f"DELETE FROM {table}")


BACKFILL_KEY = "truth_backfill"  # set by migration 0016, removed by a full rebuild


def backfill_pending(conn: apsw.Connection) -> bool:
    """True when the file's records predate the table (migration 0016 marked it):
    the projections must be rebuilt from the journal once."""
    return bool(fetchall(conn, "SELECT 1 FROM meta WHERE key = ?", (BACKFILL_KEY,)))


def _events(conn: apsw.Connection) -> Iterator[tuple[Any, ...]]:
    """Assertions, votes and outcomes from the projections, in journal order."""
    yield from conn.execute(
        "SELECT seq, 0, hash, subject, predicate, value_key, tier, timestamp, agent_id"
        " FROM assertions"
        " UNION ALL SELECT seq, 1, assertion_hash, NULL, NULL, NULL, weight, timestamp,"
        " agent_id FROM vote_history"
        " UNION ALL SELECT seq, 2, NULL, NULL, NULL, NULL, accurate, timestamp, agent_id"
        " FROM outcome_history ORDER BY 1"
    )


def rebuild(conn: apsw.Connection) -> int:
    """Empty the table and replay every assertion, vote and outcome (the caller holds
    the transaction). Returns the records replayed.

    Equal to `stemedb reindex`'s rows, except where the quarantine released a held
    vote: reindex applies it at the release, this at its own seq."""
    clear(conn)
    rows = Rows(conn, memory=True)
    targets: dict[bytes, tuple[str, str, str]] = {}
    cosigned: dict[bytes, list[bytes]] = {}
    for target, agent in fetchall(
        conn, "SELECT assertion_hash, agent_id FROM cosigners ORDER BY assertion_hash, agent_id"
    ):
        cosigned.setdefault(bytes(target), []).append(bytes(agent))
    count = 0
    for seq, kind, h, subject, predicate, value_key, x, timestamp, agent in _events(conn):
        count += 1
        if kind == 0:
            hash_ = bytes(h)
            targets[hash_] = (str(subject), str(predicate), str(value_key))
            first = [bytes(agent)] if agent is not None else []
            signers = [*first, *cosigned.get(hash_, [])]
            pair = (str(subject), str(predicate))
            on_assertion(
                rows, int(seq), pair, str(value_key), hash_, int(x), int(timestamp), signers
            )
        elif kind == 1:
            hash_ = bytes(h)
            on_vote(
                rows, int(seq), targets.get(hash_), hash_, bytes(agent), float(x), int(timestamp)
            )
        else:
            on_outcome(rows, int(seq), bytes(agent), bool(x))
    rows.flush()
    return count
