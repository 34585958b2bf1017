"""CPU cost of the `truth` table in the writer, per assertion (issues 18/21).

    python -m bench.truth_write_cost                  # 5 rounds, table on and off
    python -m bench.truth_write_cost --profile        # cProfile of one round (table on)

The records are `bench.floor --stages`'s (bench/datasets.py: 10 assertions per
pair from the cached agents), written in-process through `Store.write` in
1,000-record batches; the clock is `time.process_time()` around the write loop
(the writer thread's CPU included), so other load on the machine does not count.
"off" replaces `truth_state.apply` by a no-op: the writer without the table.
Each round runs on and off on fresh databases; the report gives the medians.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import datasets
from bench.ingest import CHUNK
from bench.server import work_dir
from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
from stemedb.crypto import sha3_256
from stemedb.records.prepare import _draft
from stemedb.store import PendingRecord, Store, truth_state


def pending_records(count: int) -> list[PendingRecord]:
    now = int(time.time())
    lines = datasets.load_lines(datasets.signed_lines(count, prefix="floor"))
    out = []
    for line in lines:
        d = _draft(
            "assertion",
            json.loads(line),
            now_s=now,
            scheme_tiers=DEFAULT_SCHEME_TIERS,
            require_signatures=True,
        )
        record = dict(d.record, signatures=d.ordered)  # type: ignore[union-attr]
        out.append(
            PendingRecord(
                "assertion", sha3_256(d.body.encode()), d.body, record, now * 1000, d.digest
            )
        )
    return out


def write_cost(pending: list[PendingRecord], *, table: bool, profile: bool = False) -> float:
    """CPU µs per record of writing `pending` to a fresh store."""
    original = truth_state.apply
    if not table:
        truth_state.apply = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
            store = Store(Settings(db_dir=Path(tmp), sync="full")).open()
            prof = cProfile.Profile() if profile else None
            flush = truth_state.flush_deferred
            if prof is not None:  # the table's share, in the writer thread
                truth_state.flush_deferred = lambda conn: prof.runcall(flush, conn)  # type: ignore[assignment]
            started = time.process_time()
            for start in range(0, len(pending), CHUNK):
                store.write(pending[start : start + CHUNK])
            spent = time.process_time() - started
            if prof is not None:
                truth_state.flush_deferred = flush  # type: ignore[assignment]
                pstats.Stats(prof).sort_stats("tottime").print_stats(35)
            store.close()
    finally:
        truth_state.apply = original  # type: ignore[assignment]
    return spent / len(pending) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.truth_write_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    pending = pending_records(args.records)
    if args.profile:
        write_cost(pending, table=True, profile=True)
        return 0
    res: dict[str, Any] = {"on": [], "off": []}
    for _ in range(args.rounds):
        res["on"].append(write_cost(pending, table=True))
        res["off"].append(write_cost(pending, table=False))
    on, off = statistics.median(res["on"]), statistics.median(res["off"])
    print(json.dumps({
        "records": len(pending), "rounds": args.rounds,
        "writer_us_per_assertion_table_on": round(on, 1),
        "writer_us_per_assertion_table_off": round(off, 1),
        "table_us_per_assertion": round(on - off, 1),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
