"""A database as a pre-v0.2 server left it, with replays (data-model.md §7).

A pre-v0.2 server journaled every record id it had not seen, so its file can
hold two frames with one identity (kind + signed digest): a copy re-minted by
changing an unsigned signature-entry `timestamp`, or a co-signed claim with an
entry stripped. `write_old` makes such a file for real: the same store code
with the identity check switched off (what the old server ran), the frames in
the old form; `as_found_by_the_upgrade` then puts it in the state the upgrade
finds it in. Import by name: `from replaykit import records, write_old, ...`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import apsw
import pytest
from identitykit import Signer, T, frame_of, old_style, sign_by, unsigned_of_every_kind

from stemedb.config import Settings
from stemedb.records.source import source_id
from stemedb.store import PendingRecord, Store, digests
from stemedb.store.schema import available_migrations, connect

A, B, C, D = (Signer() for _ in range(4))
SUBJECT = "replay/upgrade"


def replays_version() -> int:
    return next(m.version for m in available_migrations() if m.name.endswith("_record_replays.sql"))


def old_frame(kind: str, record: dict[str, Any], entry_ts: int | None = None) -> PendingRecord:
    old = old_style(record, entry_ts)
    frame_hash, body = frame_of(old)
    return PendingRecord(kind, frame_hash, body, old, int(time.time() * 1000))


def records() -> list[tuple[str, dict[str, Any]]]:
    """One record of every kind (co-signed where the kind allows), in write order."""
    yes = sign_by("assertion", claim("yes"), [A, B])
    no = sign_by("assertion", claim("no"), [C])
    # What the vote, outcome and supersession name: claims on another subject, so that
    # SUBJECT's two claims stay a plain 50/50 conflict.
    old = sign_by("assertion", {**claim("old"), "subject": f"{SUBJECT}/target"}, [A, B])
    new = sign_by("assertion", {**claim("new"), "subject": f"{SUBJECT}/target"}, [C])
    target, other = (frame_of(old_style(r))[0].hex() for r in (old, new))
    out: list[tuple[str, dict[str, Any]]] = [("assertion", r) for r in (yes, no, old, new)]
    for kind, unsigned in unsigned_of_every_kind(target, other, None, C.id, "up").values():
        out.append((kind, sign_by(kind, unsigned, [A] if kind in ("vote", "outcome") else [A, B])))
    identifier = "doi:10.1/replayed"
    out += [
        ("agent_tier", sign_by("agent_tier", _tier(), [A])),
        ("source", sign_by("source", {"identifier": identifier, "timestamp": T + 6}, [A])),
        (
            "retraction",
            sign_by(
                "retraction",
                {"source_id": source_id(identifier), "reason": "fabricated", "timestamp": T + 7},
                [A],
            ),
        ),
    ]
    return out


def claim(value: str) -> dict[str, Any]:
    return {
        "subject": SUBJECT,
        "predicate": "p",
        "object": value,
        "confidence": 0.9,
        "timestamp": T,
    }


def _tier() -> dict[str, Any]:
    return {"agent_id": D.id, "max_tier": "Expert", "name": "replayed", "timestamp": T + 8}


def replays_of(kind: str, record: dict[str, Any]) -> list[PendingRecord]:
    """What an attacker re-minted on the old server: other entry timestamps, and
    each co-signer's entry alone."""
    out = [old_frame(kind, record, T - 5), old_frame(kind, record, T + 9)]
    if len(record["signatures"]) > 1:
        out += [old_frame(kind, {**record, "signatures": [e]}) for e in record["signatures"]]
    return out


def _note_all(conn: apsw.Connection, seq: int, kind: str, record: Any, digest: Any = None) -> bool:
    """The old server's projections: every frame applied (its identity row, if any,
    kept by the first frame, as the early v0.2 backfill did)."""
    if kind != "header":
        row = (digests.digest_of(record), digests.signer_of(kind, record), kind, seq)
        conn.execute(digests._INSERT, row)
    return True


def write_old(directory: Path, batches: list[list[PendingRecord]]) -> None:
    """Journal `batches` as a pre-v0.2 server did: no identity lookup, every frame projected."""
    directory.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(digests, "lookup", lambda *args: None)
        patch.setattr(digests, "note", _note_all)
        store = Store(Settings(db_dir=directory)).open()
        try:
            for batch in batches:
                assert {o.status for o in store.write(batch)} == {"created"}
        finally:
            store.close()


def as_found_by_the_upgrade(path: Path, *, digests_backfilled: bool) -> None:
    """The file before migration 0012: no `record_replays`; its identities either not
    yet known (a pre-v0.2 file) or backfilled by an earlier v0.2 build, which kept
    the first frame of each identity and never looked for replays."""
    conn = connect(path)
    with conn:
        conn.execute("DROP TABLE record_replays")
        conn.execute(f"PRAGMA user_version = {replays_version() - 1}")
        conn.execute("DELETE FROM meta WHERE key = ?", (digests.BACKFILL_KEY,))
        if not digests_backfilled:
            conn.execute("DELETE FROM record_digests")
            conn.execute("INSERT INTO meta VALUES (?, -1)", (digests.BACKFILL_KEY,))
    conn.close()


def upgrade(directory: Path) -> str:
    """Start the current store on an old file (migrations, backfills, one-time
    rebuilds) without a writer; its start-up notes."""
    directory.mkdir(parents=True, exist_ok=True)
    store = Store(Settings(db_dir=directory))
    store.open_journal()
    try:
        return store.open_projections()
    finally:
        store.close()
