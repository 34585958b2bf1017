"""Projection tables: derived from journal frames, in the frame's transaction.

`apply` is the one place a frame's record changes derived state; live writes,
start-up catch-up and `stemedb reindex` all go through it, so they cannot
disagree. Reference checks (`check_references`) run only for new writes: a
frame already in the journal passed them when it was written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import apsw

from stemedb.canonical import canonical_json
from stemedb.errors import NotFound
from stemedb.records import SourceClass
from stemedb.store import agent_tiers, agents_seen, digests, quarantine, sources, truth_state
from stemedb.store.schema import fetchall

PROJECTION_TABLES = (
    "assertions",
    "votes",
    "vote_totals",
    "epochs",
    "epoch_closure",
    "epoch_superseded",
    "supersessions",
    "aliases",
    "trust",
    "agent_tiers",  # agent_tier registrations (migration 0005, store/agent_tiers.py)
    "agents",  # agent first-seen times (migration 0006, store/agents_seen.py)
    "quarantine",  # held assertions and decisions (migration 0008, store/quarantine.py)
    "sources",  # source registrations (migration 0009, store/sources.py)
    "retractions",  # source retractions (migration 0009, store/sources.py)
    # History for `known_at` and co-signers (migration 0004); never overwritten.
    "vote_history",
    "alias_history",
    "outcome_history",
    "cosigners",
    # Identity by signed content (migrations 0003, 0012; store/digests.py).
    "record_digests",
    "record_replays",
    *truth_state.TABLES,  # the truth lens's reliability (migration 0013, store/truth_state.py)
)

TRUST_DEFAULT = 0.5
TRUST_HALF_LIFE_S = 30 * 86400
TRUST_STEP_ACCURATE = 0.05
TRUST_STEP_INACCURATE = -0.10

Record = Mapping[str, Any]


def _b(hex_value: str | None) -> bytes | None:
    return bytes.fromhex(hex_value) if hex_value else None


def first_signer(record: Record) -> str | None:
    signatures = record.get("signatures") or []
    return str(signatures[0]["agent_id"]) if signatures else None


def _exists(conn: apsw.Connection, table: str, column: str, value: bytes) -> bool:
    sql = f"SELECT 1 FROM {table} WHERE {column} = ? LIMIT 1"
    return bool(fetchall(conn, sql, (value,)))


def _require(conn: apsw.Connection, table: str, field: str, hex_value: str | None) -> None:
    if hex_value and not _exists(
        conn, table, "hash" if table != "epochs" else "id", _b(hex_value) or b""
    ):
        what = "epoch" if table == "epochs" else "assertion"
        raise NotFound(
            f"{field}: {what} {hex_value} does not exist",
            [{"field": field, "problem": f"unknown {what} {hex_value}"}],
        )


def check_references(conn: apsw.Connection, kind: str, record: Record) -> None:
    """Referenced records must exist (earlier in the same batch counts)."""
    if kind == "assertion":
        _require(conn, "assertions", "parent_hash", record.get("parent_hash"))
        _require(conn, "epochs", "epoch", record.get("epoch"))
    elif kind in ("vote", "outcome"):
        _require(conn, "assertions", "assertion_hash", record.get("assertion_hash"))
    elif kind == "supersession":
        _require(conn, "assertions", "target_hash", record.get("target_hash"))
        _require(conn, "assertions", "replacement_hash", record.get("replacement_hash"))
    elif kind == "epoch":
        for index, epoch_id in enumerate(record.get("supersedes") or []):
            _require(conn, "epochs", f"supersedes.{index}", epoch_id)
    sources.check_references(conn, kind, record)  # a retraction names a registered source
    quarantine.check_references(conn, kind, record)  # a decision names an undecided hold


def _apply_assertion(
    conn: apsw.Connection, seq: int, frame_hash: bytes, record: Record, written_ms: int
) -> None:
    obj = record["object"]
    value = obj.get("value")
    value_text = value if obj["type"] in ("Text", "Reference") else None
    value_num = float(value) if obj["type"] in ("Number", "Boolean") else None
    signer = first_signer(record)
    conn.execute(
        "INSERT INTO assertions (seq, hash, subject, predicate, object_type, value_text, value_num,"
        " value_key, confidence, tier, source, source_hash, lifecycle, parent_hash, epoch,"
        " timestamp, agent_id, written_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            seq,
            frame_hash,
            record["subject"],
            record["predicate"],
            obj["type"],
            value_text,
            value_num,
            canonical_json(obj),
            float(record["confidence"]),
            int(SourceClass[record["source_class"]]),
            record.get("source"),
            _b(record.get("source_hash")),
            record["lifecycle"],
            _b(record.get("parent_hash")),
            _b(record.get("epoch")),
            int(record["timestamp"]),
            _b(signer),
            written_ms,
        ),
    )
    for entry in (record.get("signatures") or [])[1:]:
        conn.execute(
            "INSERT OR IGNORE INTO cosigners (assertion_hash, agent_id) VALUES (?, ?)",
            (frame_hash, bytes.fromhex(entry["agent_id"])),
        )


def _apply_vote(
    conn: apsw.Connection, seq: int, frame_hash: bytes, record: Record, written_ms: int
) -> None:
    target = _b(record["assertion_hash"])
    agent = _b(first_signer(record)) or b""
    timestamp = int(record["timestamp"])
    conn.execute(
        "INSERT OR REPLACE INTO vote_history"
        " (assertion_hash, seq, agent_id, weight, timestamp, written_ms) VALUES (?, ?, ?, ?, ?, ?)",
        (target, seq, agent, float(record["weight"]), timestamp, written_ms),
    )
    existing = fetchall(
        conn,
        "SELECT timestamp, seq FROM votes WHERE assertion_hash = ? AND agent_id = ?",
        (target, agent),
    )
    if existing and (int(existing[0][0]), int(existing[0][1])) > (timestamp, seq):
        return  # an agent's later vote (by claim time) already replaced this one
    conn.execute(
        "INSERT OR REPLACE INTO votes (assertion_hash, agent_id, weight, timestamp, seq)"
        " VALUES (?, ?, ?, ?, ?)",
        (target, agent, float(record["weight"]), timestamp, seq),
    )
    conn.execute(
        "INSERT OR REPLACE INTO vote_totals (assertion_hash, count, total)"
        " SELECT ?, count(*), total(weight) FROM votes WHERE assertion_hash = ?",
        (target, target),
    )


def _apply_epoch(
    conn: apsw.Connection, seq: int, frame_hash: bytes, record: Record, written_ms: int
) -> None:
    supersedes = list(record.get("supersedes") or [])
    conn.execute(
        "INSERT INTO epochs (id, seq, name, description, supersedes, timestamp, written_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            frame_hash,
            seq,
            record["name"],
            record.get("description"),
            json.dumps(supersedes),
            int(record["timestamp"]),
            written_ms,
        ),
    )
    for epoch_hex in supersedes:
        direct = bytes.fromhex(epoch_hex)
        if direct == frame_hash:
            continue  # a self-reference cannot be made through content addressing; ignore it
        conn.execute(
            "INSERT OR IGNORE INTO epoch_closure (epoch, ancestor) VALUES (?, ?)",
            (frame_hash, direct),
        )
        conn.execute(
            "INSERT OR IGNORE INTO epoch_closure (epoch, ancestor)"
            " SELECT ?, ancestor FROM epoch_closure WHERE epoch = ? AND ancestor <> ?",
            (frame_hash, direct, frame_hash),
        )
    conn.execute(
        "INSERT OR IGNORE INTO epoch_superseded (epoch, by_epoch, written_ms)"
        " SELECT ancestor, ?, ? FROM epoch_closure WHERE epoch = ?",
        (frame_hash, written_ms, frame_hash),
    )


def _apply_supersession(
    conn: apsw.Connection, seq: int, frame_hash: bytes, record: Record, written_ms: int
) -> None:
    conn.execute(
        "INSERT INTO supersessions (seq, hash, target_hash, replacement_hash, type, reason,"
        " timestamp, written_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            frame_hash,
            _b(record["target_hash"]),
            _b(record.get("replacement_hash")),
            record["type"],
            record.get("reason"),
            int(record["timestamp"]),
            written_ms,
        ),
    )


def _apply_alias(
    conn: apsw.Connection, seq: int, frame_hash: bytes, record: Record, written_ms: int
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO aliases (alias, canonical, seq, timestamp) VALUES (?, ?, ?, ?)",
        (record["alias"], record["canonical"], seq, int(record["timestamp"])),
    )
    conn.execute(
        "INSERT OR REPLACE INTO alias_history (alias, seq, canonical, timestamp, written_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        (record["alias"], seq, record["canonical"], int(record["timestamp"]), written_ms),
    )


def relaxed_trust(score: float, last_updated_s: float, at_s: float) -> float:
    """TrustRank relaxes toward 0.5 with a 30-day half-life since its last update."""
    elapsed = max(0.0, at_s - last_updated_s)
    return TRUST_DEFAULT + (score - TRUST_DEFAULT) * 2 ** (-elapsed / TRUST_HALF_LIFE_S)


class TrustState(NamedTuple):
    """An agent's folded TrustRank: what a `trust` row holds."""

    score: float
    last_updated: int  # Unix seconds, claim time of the last outcome
    accurate: int
    inaccurate: int


def fold_outcome(state: TrustState | None, accurate: bool, timestamp: int) -> TrustState:
    """One outcome applied to an agent's trust: relax to the outcome's time, step, clamp.

    The one definition of the fold: the `trust` projection applies it frame by
    frame, and a `known_at` read replays an agent's `outcome_history` with it.
    """
    if state is None:
        state = TrustState(TRUST_DEFAULT, timestamp, 0, 0)
    at = max(timestamp, state.last_updated)
    current = relaxed_trust(state.score, float(state.last_updated), float(at))
    good, bad = state.accurate, state.inaccurate
    if accurate:
        current, good = current + TRUST_STEP_ACCURATE, good + 1
    else:
        current, bad = current + TRUST_STEP_INACCURATE, bad + 1
    return TrustState(min(1.0, max(0.0, current)), at, good, bad)


def _apply_outcome(
    conn: apsw.Connection, seq: int, frame_hash: bytes, record: Record, written_ms: int
) -> None:
    agent = bytes.fromhex(record["agent_id"])
    timestamp = int(record["timestamp"])
    accurate = bool(record["accurate"])
    rows = fetchall(
        conn,
        "SELECT score, last_updated, accurate, inaccurate FROM trust WHERE agent_id = ?",
        (agent,),
    )
    before = (
        TrustState(float(rows[0][0]), int(rows[0][1]), int(rows[0][2]), int(rows[0][3]))
        if rows
        else None
    )
    after = fold_outcome(before, accurate, timestamp)
    conn.execute(
        "INSERT OR REPLACE INTO trust (agent_id, score, last_updated, accurate, inaccurate, seq)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (agent, after.score, after.last_updated, after.accurate, after.inaccurate, seq),
    )
    conn.execute(
        "INSERT OR REPLACE INTO outcome_history (agent_id, seq, accurate, timestamp, written_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        (agent, seq, int(accurate), timestamp, written_ms),
    )


_APPLIERS: dict[str, Callable[[apsw.Connection, int, bytes, Record, int], None]] = {
    "assertion": _apply_assertion,
    "vote": _apply_vote,
    "epoch": _apply_epoch,
    "supersession": _apply_supersession,
    "alias": _apply_alias,
    "outcome": _apply_outcome,
}


def apply(
    conn: apsw.Connection,
    seq: int,
    kind: str,
    frame_hash: bytes,
    record: Record,
    written_ms: int,
    digest: bytes | None = None,
) -> None:
    """Reflect one journal frame in the projections (header frames change nothing).
    `digest`: the record's signed digest when the caller has it (the writer).
    A replay (an earlier frame has the same identity, data-model.md §7) is noted
    in `record_replays` and projects nothing: no lens may count it."""
    if not digests.note(conn, seq, kind, record, digest):  # identity by signed content
        return
    applier = _APPLIERS.get(kind)
    # A vote, supersession, alias or epoch the quarantine policy holds is projected
    # only when an admin releases it (store/quarantine.py, issue 19).
    held = applier is not None and quarantine.withheld(
        conn, seq, kind, frame_hash, record, written_ms
    )
    if applier is not None and not held:
        applier(conn, seq, frame_hash, record, written_ms)
    agent_tiers.apply(conn, seq, kind, frame_hash, record, written_ms)  # agent_tier only
    sources.apply(conn, seq, kind, frame_hash, record, written_ms)  # source, retraction only
    agents_seen.apply(conn, seq, kind, record, written_ms)  # every signer's first frame
    quarantine.apply(conn, seq, kind, frame_hash, record, written_ms)  # after agents_seen
    if not held:  # a held vote counts for the truth table when released
        truth_state.apply(conn, seq, kind, frame_hash, record, written_ms)


def project_released(
    conn: apsw.Connection, seq: int, kind: str, frame_hash: bytes, record: Record, written_ms: int
) -> None:
    """Project a held frame an admin released (store/quarantine.py) as of `written_ms`."""
    _APPLIERS[kind](conn, seq, frame_hash, record, written_ms)
    truth_state.apply(conn, seq, kind, frame_hash, record, written_ms)  # at the release


def set_applied_seq(conn: apsw.Connection, seq: int) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('applied_seq', ?)", (seq,))


def applied_seq(conn: apsw.Connection) -> int:
    rows = fetchall(conn, "SELECT value FROM meta WHERE key = 'applied_seq'")
    return int(rows[0][0]) if rows else -1


def clear(conn: apsw.Connection) -> None:
    """Empty every projection (for reindex); the caller holds the transaction."""
    for table in PROJECTION_TABLES:
        conn.execute(f"DELETE FROM {table}")
    digests.clear(conn)
    # A full rebuild fills the truth table from the whole journal: the backfill
    # migration 0016 asked for is done (in the rebuild's own transaction).
    conn.execute("DELETE FROM meta WHERE key = ?", (truth_state.BACKFILL_KEY,))
    set_applied_seq(conn, -1)
