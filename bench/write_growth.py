"""Single writes at 10k and at 1M claims, in process: what grows with the file.

    python -m bench.write_growth --records 1000 --rounds 2

Issue 21 asks for a single-write p99 flat (≤ 1.3×) from 10k to 1M claims at one
client. This takes HTTP out and asks the store: one `Store.write` per record
(what one client's single writes become), `synchronous=FULL`, on a fresh copy
of each cached database, the sizes alternating round by round. Per write: its
wall time and the process's CPU time (the writer thread does the work, so
`process_time` around the call), and a cProfile of the writer's commits
(`Writer._commit`) by function. CPU time does not move with other load on the
machine; the wall time's excess over it is the waits (fsync, the page cache).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from bench import dbcache
from bench.stats import percentile
from bench.truth_write_cost import pending_records
from stemedb.config import Settings
from stemedb.store import PendingRecord, Store
from stemedb.store.writer import Writer

SIZES = (10_000, 1_000_000)


def one_size(n: int, pending: list[PendingRecord], profile: bool) -> dict[str, Any]:
    data = dbcache.copy_to(n, dbcache.fresh_dir())
    prof = cProfile.Profile() if profile else None
    original = Writer._commit
    if prof is not None:

        def commit(self: Writer, jobs: Any) -> None:
            prof.runcall(original, self, jobs)

        Writer._commit = commit  # type: ignore[method-assign]
    try:
        store = Store(Settings(db_dir=data / "db", sync="full")).open()
        walls, cpus = [], []
        for record in pending:
            c0, w0 = time.process_time(), time.perf_counter()
            store.write([record])
            walls.append((time.perf_counter() - w0) * 1000)
            cpus.append((time.process_time() - c0) * 1000)
        store.close()
    finally:
        Writer._commit = original  # type: ignore[method-assign]
        shutil.rmtree(data, ignore_errors=True)
    out: dict[str, Any] = {
        "wall_p50_ms": round(statistics.median(walls), 3),
        "wall_p99_ms": round(percentile(walls, 99), 3),
        "cpu_p50_ms": round(statistics.median(cpus), 3),
        "cpu_p99_ms": round(percentile(cpus, 99), 3),
        "cpu_mean_ms": round(statistics.fmean(cpus), 3),
    }
    if prof is not None:
        stats = pstats.Stats(prof)
        rows = sorted(
            ((v[2], f"{Path(k[0]).name}:{k[2]}") for k, v in stats.stats.items()),  # type: ignore[attr-defined]
            reverse=True,
        )
        total = sum(t for t, _ in rows) or 1.0
        out["commit_cpu_ms_per_write"] = round(1000 * total / len(pending), 3)
        out["top_self"] = [
            {"function": name, "us_per_write": round(1e6 * t / len(pending), 1)}
            for t, name in rows[:12]
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.write_growth", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    pending = pending_records(args.records)
    res: dict[str, Any] = {"records": args.records, "rounds": []}
    for r in range(args.rounds):
        order = SIZES if r % 2 == 0 else SIZES[::-1]
        got = {n: one_size(n, pending, profile=r == 0) for n in order}
        res["rounds"].append(got)
        for n in SIZES:
            row = {k: v for k, v in got[n].items() if k != "top_self"}
            print(f"round {r + 1} n={n}: {row}", flush=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) / f"write-growth-{stamp}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    for n in SIZES:
        print(f"profile n={n}: {res['rounds'][0][n].get('top_self')}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
