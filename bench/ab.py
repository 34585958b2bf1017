"""A/B of two source trees on the write hot path: single writes (wrk) and NDJSON batches.

    .venv/bin/python -m bench.ab --before /tmp/old --after /tmp/new --rounds 3 --seconds 5

Each tree is a directory holding `stemedb/` and `migrations/` (e.g. `git archive
<commit> stemedb migrations | tar -x -C DIR`); the server of each run is started
with PYTHONPATH=DIR, so only the code differs. Runs are interleaved round by
round (before, after, before, ...) on fresh servers with the bench defaults
(bench/server.py), so a noisy shared machine hits both sides alike; the
medians are printed side by side. Sections: `writes` (bench.writes.wrk_writes,
32 connections, the defaults of `gc_32`) and `batch` (bench.ingest.http_batch,
NDJSON chunks of 1,000 from one client).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from bench import datasets, ingest, writes
from bench.server import server


def _one(tree: Path, bodies: Path, lines: list[str], seconds: float) -> dict[str, float]:
    os.environ["PYTHONPATH"] = str(tree)
    with server({"STEMEDB_THREADS": "32"}) as srv:
        single = writes.wrk_writes(srv, bodies, seconds=seconds, count=int(5000 * seconds))
    batch = ingest.http_batch(lines, clients=1)
    return {
        "single_writes_per_s": single["acked_writes_per_s"],
        "batch_records_per_s": batch["rps"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-records", type=int, default=10_000)
    args = parser.parse_args()
    bodies = datasets.signed_lines(200_000, prefix="writes")
    lines = datasets.load_lines(datasets.signed_lines(args.batch_records))
    rows: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for r in range(args.rounds):
        for side in ("before", "after") if r % 2 == 0 else ("after", "before"):
            row = _one(getattr(args, side), bodies, lines, args.seconds)
            rows[side].append(row)
            print(f"round {r + 1} {side}: {json.dumps(row)}", flush=True)
    for key in ("single_writes_per_s", "batch_records_per_s"):
        medians = {side: statistics.median(row[key] for row in rows[side]) for side in rows}
        change = (medians["after"] / medians["before"] - 1) * 100 if medians["before"] else 0.0
        print(
            f"median {key}: before {medians['before']:.0f}  after {medians['after']:.0f}  "
            f"({change:+.1f}%)"
        )


if __name__ == "__main__":
    main()
