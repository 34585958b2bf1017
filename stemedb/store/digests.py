"""Record identity by signed content: the `record_digests` projection.

The identity rule (data-model.md §7): no byte that a signature does not
cover may change a record's identity. A record id covers the `signatures`
list, which no signature covers (and, before v0.2, unsigned per-entry
timestamps), so two submissions of the same signed content can carry
different ids. The writer therefore asks this table, not the journal's id
index, whether a record is new: one primary-key lookup by the record's
identity. A match means the record IS the stored one (`exists`, with the
stored id and seq), whatever signatures it carries.

The identity is the digest every signature signs (SHA3-256 of the canonical
JSON without `signatures`; for an unsigned record, its id), plus, for kinds
that take exactly one signature (vote, outcome, agent_tier), that signer:
those records mean "this agent says", the agent is bound by the signature
(it verifies under that key only), and the projections count them per
agent, so two agents casting the same vote in the same second cast two
votes. For every other kind the signer part is empty: re-ordering,
stripping or adding co-signers never makes a second record.

The table is a projection of the journal like the others: `note` is called
from `projections.apply` for every frame (live writes, start-up catch-up,
restore replay, `stemedb reindex`), and `backfill` fills it in for frames
journaled before migration 0003 created it.

Replays (migration 0012): a database written before v0.2 can hold two frames
with one identity (a re-minted copy). The first frame of an identity is the
record; a later one is a *replay*: it stays in the journal (frames are never
edited), `note` records it in `record_replays` (seq -> the record's seq) and
`projections.apply` projects nothing for it, so no lens counts it. When the
backfill finds a replay, the projections built before it are rebuilt from
the journal, so an upgraded file holds what `stemedb reindex` would build.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import apsw

from stemedb.canonical import canonical_json
from stemedb.crypto import sha3_256
from stemedb.records import MODELS
from stemedb.store.schema import fetchall

log = logging.getLogger("stemedb.store")

# meta key set by migration 0003: the last seq backfilled (-1: none yet); absent when done.
BACKFILL_KEY = "record_digests_backfill"
BACKFILL_CHUNK = 5000

_LOOKUP = (
    "SELECT d.seq, j.hash FROM record_digests d JOIN journal j ON j.seq = d.seq"
    " WHERE d.digest = ? AND d.signer = ? AND d.kind = ?"
)
_INSERT = "INSERT OR IGNORE INTO record_digests (digest, signer, kind, seq) VALUES (?, ?, ?, ?)"
_OWNER = "SELECT seq FROM record_digests WHERE digest = ? AND signer = ?"
_REPLAY = "INSERT OR REPLACE INTO record_replays (seq, kind, first_seq) VALUES (?, ?, ?)"
_REPLAY_OF = (
    "SELECT f.hash, f.seq FROM journal r JOIN record_replays p ON p.seq = r.seq"
    " JOIN journal f ON f.seq = p.first_seq WHERE r.hash = ?"
)

# Kinds whose one signer is part of what the record says (see the module docstring).
SIGNER_KINDS = frozenset(kind for kind, model in MODELS.items() if model.SIGNATURE_LIMIT == 1)


class Stored(NamedTuple):
    """The stored record that an identity belongs to."""

    seq: int
    hash: bytes


def digest_of(record: Mapping[str, Any]) -> bytes:
    """SHA3-256 of the canonical JSON of `record` without `signatures`: what
    every signature of it signs (for an unsigned record: its id)."""
    unsigned = {key: value for key, value in record.items() if key != "signatures"}
    return sha3_256(canonical_json(unsigned).encode("utf-8"))


def signer_of(kind: str, record: Mapping[str, Any]) -> bytes:
    """The signer part of the identity: the one signer's key for SIGNER_KINDS, else b""."""
    if kind not in SIGNER_KINDS:
        return b""
    signatures = record.get("signatures") or []
    if not signatures or not isinstance(signatures[0], Mapping):
        return b""
    return bytes.fromhex(str(signatures[0].get("agent_id", "")))


def lookup(conn: apsw.Connection, kind: str, digest: bytes, signer: bytes) -> Stored | None:
    """The stored record with this identity, if any (one primary-key lookup plus
    the journal row by seq)."""
    for seq, frame_hash in conn.execute(_LOOKUP, (digest, signer, kind)):
        return Stored(int(seq), bytes(frame_hash))
    return None


def note(
    conn: apsw.Connection,
    seq: int,
    kind: str,
    record: Mapping[str, Any],
    digest: bytes | None = None,
) -> bool:
    """Record frame `seq`'s identity (`digest`: already computed, else computed
    here); return False when the frame is a replay of an earlier frame with the
    same identity (the writer never journals one; old databases may hold
    some): it is listed in `record_replays` and must not be projected."""
    if kind == "header":
        return True
    digest = digest_of(record) if digest is None else digest
    return _claim(conn, (digest, signer_of(kind, record), kind, seq))


def _claim(conn: apsw.Connection, row: tuple[bytes, bytes, str, int]) -> bool:
    """Insert one identity row; False (and a `record_replays` row) when an earlier
    frame already holds the identity. One insert on the writer's path: the
    owner is only looked up when the insert was ignored."""
    conn.execute(_INSERT, row)
    if conn.changes():
        return True
    digest, signer, kind, seq = row
    owner = fetchall(conn, _OWNER, (digest, signer))
    first = int(owner[0][0]) if owner else seq
    if first == seq:
        return True  # this frame's own row (noted by the backfill before catch-up)
    if first > seq:
        # A later frame took the identity first: frames were noted out of seq order
        # (a restore replayed archived frames onto a backup whose backfill was still
        # pending). This frame is the record; the later one becomes the replay, and
        # the backfill's end rebuilds the projections that counted it.
        conn.execute(
            "UPDATE record_digests SET seq = ? WHERE digest = ? AND signer = ?",
            (seq, digest, signer),
        )
        conn.execute(_REPLAY, (first, kind, seq))
        conn.execute("UPDATE record_replays SET first_seq = ? WHERE first_seq = ?", (seq, first))
        return True
    conn.execute(_REPLAY, (seq, kind, first))
    return False


def replay_of(conn: apsw.Connection, frame_hash: bytes) -> Stored | None:
    """The record a journalled replay repeats (None: `frame_hash` is not a replay, or
    the file predates migration 0012, e.g. served read-only after a failed check)."""
    try:
        for first_hash, first_seq in conn.execute(_REPLAY_OF, (frame_hash,)):
            return Stored(int(first_seq), bytes(first_hash))
    except apsw.SQLError:
        return None
    return None


def replay_count(conn: apsw.Connection, kind: str | None = None) -> int:
    """How many journal frames are replays (of `kind`, or of every kind)."""
    if kind is None:
        return int(fetchall(conn, "SELECT count(*) FROM record_replays")[0][0])
    sql = "SELECT count(*) FROM record_replays WHERE kind = ?"
    return int(fetchall(conn, sql, (kind,))[0][0])


def replay_summary(conn: apsw.Connection) -> tuple[list[tuple[str, int, int]], bool] | None:
    """((kind, replays, first replay's seq) per kind, whether the backfill is still
    pending) for verify and the doctor; None before migration 0012 (not listed yet)."""
    if not fetchall(conn, "SELECT 1 FROM sqlite_master WHERE name = 'record_replays'"):
        return None
    sql = "SELECT kind, count(*), min(seq) FROM record_replays GROUP BY kind ORDER BY kind"
    by_kind = [(str(k), int(n), int(s)) for k, n, s in fetchall(conn, sql)]
    pending = fetchall(conn, "SELECT 1 FROM meta WHERE key = ?", (BACKFILL_KEY,))
    return by_kind, bool(pending)


def clear(conn: apsw.Connection) -> None:
    """Empty the table for a rebuild (the caller re-applies every frame after)."""
    conn.execute("DELETE FROM record_digests")
    conn.execute("DELETE FROM record_replays")
    conn.execute("DELETE FROM meta WHERE key = ?", (BACKFILL_KEY,))


def backfill(conn: apsw.Connection, chunk: int = BACKFILL_CHUNK) -> int:
    """Fill in the identities of frames journaled before migration 0003 (and find
    the replays among them, migration 0012); return how many frames were read
    (0 when there is nothing to do, the usual case).

    Idempotent and resumable: frames are taken in seq order, the first frame of
    each identity keeps it (later ones go to `record_replays`), and each chunk
    commits with the seq it reached, so an interrupted start continues where it
    stopped. A frame whose body is not a record is skipped with a warning: the
    journal checks (`stemedb verify`) name it; it cannot be a record anyone
    could replay. If any replay is known at the end, the projections (built
    before replays were recognised) are rebuilt from the journal in the same
    transaction that ends the backfill, so the result equals `stemedb reindex`.
    """
    rows = fetchall(conn, "SELECT value FROM meta WHERE key = ?", (BACKFILL_KEY,))
    if not rows:
        return 0
    done = int(rows[0][0])
    total = 0
    while True:
        frames = fetchall(
            conn,
            "SELECT seq, kind, body FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
            (done, chunk),
        )
        if not frames:
            _finish(conn)
            break
        with conn:
            for seq, kind, body in frames:
                row = _identity_row(int(seq), kind, body)
                if row is not None:
                    _claim(conn, row)
            done = int(frames[-1][0])
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", (done, BACKFILL_KEY))
        total += len(frames)
    if total:
        log.info("record digests: backfilled %d journal frames", total)
    return total


def _finish(conn: apsw.Connection) -> None:
    """End the backfill: with replays in the journal, rebuild the projections so
    nothing counts them (the rebuild's own clear ends the backfill)."""
    replays = replay_count(conn)
    if not replays:
        with conn:
            conn.execute("DELETE FROM meta WHERE key = ?", (BACKFILL_KEY,))
        return
    from stemedb.store.consistency import RUNBOOK, StartupError  # they import this module
    from stemedb.store.journal import CORRUPTION_RUNBOOK, JournalError
    from stemedb.store.verify import rebuild_projections

    log.warning(
        "record digests: %d journal frames are replays of earlier records (stored before "
        "v0.2); rebuilding the projections without them (%s §7)",
        replays,
        RUNBOOK,
    )
    try:
        frames = rebuild_projections(conn)
    except JournalError as exc:
        raise StartupError(
            f"record digests: cannot rebuild the projections without the replays: {exc}",
            CORRUPTION_RUNBOOK,
        ) from None
    log.info(
        "record digests: projections rebuilt from %d frames; %d replays kept in the journal,"
        " not counted",
        frames,
        replay_count(conn),
    )


def _identity_row(seq: int, kind: Any, body: Any) -> tuple[bytes, bytes, str, int] | None:
    if kind == "header":
        return None
    try:
        record = json.loads(body)
        if isinstance(record, dict):
            return digest_of(record), signer_of(str(kind), record), str(kind), seq
    except (TypeError, ValueError, AttributeError):
        pass
    log.warning("record digests: frame %d is not a record (skipped; run `stemedb verify`)", seq)
    return None
