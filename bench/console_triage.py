"""Server time of GET /v1/triage's work at scale, in-process, on synthetic rows.

Signing and importing 1,000,000 real records costs far more than this machine can
spare, and the triage index reads only the `assertions` and `supersessions`
projections. So this fills those two tables (real schema, real migrations) with N
unsigned synthetic rows shaped like bench/datasets.py (10 claims per pair, five
values, six tiers, 1% of assertions superseded), then measures with the real
TriageService:

* the first fold (what the background warm-up does once after start);
* a triage request (median, p99) over a mix of filters: none, a concept prefix,
  a tier, a class;
* a request after 1,000 new assertions arrived (the incremental catch-up).

    .venv/bin/python -m bench.console_triage 1000000

It measures the service, not HTTP (add the framework's ~1 ms) and not signature
checks (not involved in triage).
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw

from stemedb.service.triage import TriageQuery, TriageService
from stemedb.store import schema

T0 = 1_700_000_000
PER_PAIR = 10  # claims per pair; the second argument overrides it (1: no pair contested)


class RowStore:
    """Just what TriageService needs of a Store: `reader()`."""

    def __init__(self, path: Path) -> None:
        self.conn = schema.connect(path, sync="off")

    @contextlib.contextmanager
    def reader(self) -> Iterator[apsw.Connection]:
        yield self.conn


AGENTS = 50  # signers of the synthetic rows (unregistered: their tiers are capped)


def agent(i: int) -> bytes:
    return (7_000 + i % AGENTS).to_bytes(32, "big")


def fill(conn: apsw.Connection, start: int, n: int) -> None:
    tiers = 6
    rows = []
    for i in range(start, start + n):
        pair = i // PER_PAIR
        text = f"v{(i * 7919) % 5}"
        rows.append(
            (
                i + 1,
                i.to_bytes(32, "big"),
                f"bench/s{pair // 4}",
                f"p{pair % 4}",
                "Text",
                f"{text}-{pair}",  # value text: unique per pair, five per pair
                f'{{"type":"Text","value":"{text}"}}',
                round(0.5 + (i % 50) / 100, 2),
                i % tiers,
                "Proposed",
                T0 + i,
                agent(i),
                0,
            )
        )
    with conn:
        conn.executemany(
            "INSERT INTO assertions (seq, hash, subject, predicate, object_type, value_text, "
            "value_key, confidence, tier, lifecycle, timestamp, agent_id, written_ms) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        sup = [
            (10_000_000 + i, (10**12 + i).to_bytes(32, "big"), i.to_bytes(32, "big"), T0 + i)
            for i in range(start, start + n, 100)
        ]
        conn.executemany(
            "INSERT INTO supersessions (seq, hash, target_hash, type, timestamp, written_ms) "
            "VALUES (?,?,?,'Invalidate',?,0)",
            sup,
        )


def register(conn: apsw.Connection, seq: int, who: bytes, tier: int) -> None:
    """An agent_tiers row as an `agent_tier` record's projection would write it."""
    with conn:
        conn.execute(
            "INSERT INTO agent_tiers (seq, hash, agent_id, max_tier, timestamp, written_ms) "
            "VALUES (?, ?, ?, ?, ?, 0)",
            (seq, seq.to_bytes(32, "big"), who, tier, T0),
        )


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return (time.perf_counter() - started) * 1000, out


def main(argv: list[str]) -> int:
    global PER_PAIR
    n = int(argv[0]) if argv else 100_000
    PER_PAIR = int(argv[1]) if len(argv) > 1 else PER_PAIR
    with tempfile.TemporaryDirectory(prefix="stemedb-triage-") as tmp:
        path = Path(tmp) / "triage.db"
        store = RowStore(path)
        schema.apply_migrations(store.conn)
        fill_ms, _ = timed(lambda: fill(store.conn, 0, n))
        service = TriageService(store)  # type: ignore[arg-type]
        before = rss_mb()

        def first_fold() -> None:
            service.start()
            service.ready.wait()

        fold_ms, _ = timed(first_fold)
        index_mb = rss_mb() - before
        queries = [
            TriageQuery(),
            TriageQuery(prefix="bench/s1"),
            TriageQuery(tier=0),
            TriageQuery(klass="Active"),
            TriageQuery(klass="Emerging", window_days=7),
        ]
        times = []
        for i in range(60):
            query = queries[i % len(queries)]
            ms, body = timed(lambda q=query: service.triage(q))  # type: ignore[misc]
            assert body["status"] == "ready", body
            times.append(ms)
        fill(store.conn, n, 1000)
        catch_ms, body = timed(lambda: service.triage(TriageQuery()))
        # an admin registers one signer (1/AGENTS of the claims): its pairs are re-capped,
        # in the request up to REFOLD_PAIRS of them, else by a refold on the side
        register(store.conn, 20_000_000, agent(0), 0)
        recap_ms, body = timed(lambda: service.triage(TriageQuery()))
        if body["status"] == "building":
            more_ms, _ = timed(lambda: service.ready.wait())
            recap_ms += more_ms
        times.sort()
        print(
            f"assertions={n:,} per_pair={PER_PAIR} contested_pairs={len(service.contested):,} "
            f"fill={fill_ms / 1000:.1f}s first_fold={fold_ms / 1000:.1f}s "
            f"triage_median={statistics.median(times):.0f}ms "
            f"p99={times[int(len(times) * 0.99) - 1]:.0f}ms max={times[-1]:.0f}ms "
            f"after_1000_new={catch_ms:.0f}ms after_registration={recap_ms:.0f}ms "
            f"index_rss={index_mb:.0f}MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
