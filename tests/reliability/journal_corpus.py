"""A real database with every record kind, for the journal checker tests.

Records are signed and normalised by the product's own code (`sign_record`,
`prepare_record`) and written through the real `Store`, so every frame is
exactly what a server writes. The file is checkpointed and closed, so a plain
byte copy of `stemedb.db` is the whole database.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
from stemedb.records import prepare_record
from stemedb.signing import sign_record
from stemedb.store import PendingRecord, Store

SEEDS = [bytes([n]) * 32 for n in range(1, 5)]


def _prepared(kind: str, unsigned: dict[str, Any], seed: bytes, now_s: int) -> PendingRecord:
    signed = sign_record(kind, unsigned, [seed], now_s=now_s)
    prepared = prepare_record(
        kind, signed, now_s=now_s, scheme_tiers=DEFAULT_SCHEME_TIERS, require_signatures=True
    )
    return PendingRecord(
        kind, prepared.hash, prepared.body, prepared.record, int(time.time() * 1000)
    )


def _round(n: int, state: dict[str, str], now_s: int) -> list[tuple[str, dict[str, Any]]]:
    values: list[Any] = [f"välue {n} ✓", n * 1.5, n % 2 == 0, f"refs/r{n}"]
    types = ["Text", "Number", "Boolean", "Reference"]
    assertion: dict[str, Any] = {
        "subject": f"corpus/s{n // 5}",
        "predicate": f"p{n % 7}",
        "object": {"type": types[n % 4], "value": values[n % 4]},
        "confidence": round((n % 10) / 10, 1),
        "source": f"doi://10.1000/c.{n}",
        "timestamp": now_s - 1000 + n,
    }
    if "assertion" in state:
        assertion["parent_hash"] = state["assertion"]
    if "epoch" in state:
        assertion["epoch"] = state["epoch"]
    return [("assertion", assertion)]


def _followers(
    n: int, target: str, state: dict[str, str], now_s: int
) -> list[tuple[str, dict[str, Any]]]:
    t = now_s - 1000 + n
    epoch: dict[str, Any] = {"name": f"epoch-{n}", "description": "corpus", "timestamp": t}
    epoch["supersedes"] = [state["epoch"]] if "epoch" in state else []
    return [
        ("vote", {"assertion_hash": target, "weight": 0.5 if n % 2 else -1, "timestamp": t}),
        ("epoch", epoch),
        ("supersession", {"target_hash": target, "type": "Correct", "reason": "r", "timestamp": t}),
        ("alias", {"alias": f"alias/a{n}", "canonical": f"corpus/s{n // 5}", "timestamp": t}),
        (
            "outcome",
            {
                "agent_id": "ab" * 32,
                "assertion_hash": target,
                "accurate": n % 3 == 0,
                "timestamp": t,
            },
        ),
    ]


def build(root: Path, rounds: int) -> Path:
    """`rounds` records of each of the six kinds; returns the closed database file."""
    settings = Settings(db_dir=root / "db", wal_dir=root / "wal")
    settings.db_dir.mkdir(parents=True)
    store = Store(settings).open()
    now_s = int(time.time())
    state: dict[str, str] = {}
    try:
        for n in range(rounds):
            seed = SEEDS[n % len(SEEDS)]
            (first,) = [_prepared(k, r, seed, now_s) for k, r in _round(n, state, now_s)]
            (done,) = store.write([first])
            assert done.status == "created", done
            target = first.hash.hex()
            rest = [_prepared(k, r, seed, now_s) for k, r in _followers(n, target, state, now_s)]
            for pending, outcome in zip(rest, store.write(rest), strict=True):
                assert outcome.status == "created", (pending.kind, outcome)
                if pending.kind == "epoch":
                    state["epoch"] = pending.hash.hex()
            state["assertion"] = target
    finally:
        store.close()
    assert not (settings.db_dir / "stemedb.db-wal").exists(), "file not checkpointed"
    return settings.db_path
