"""`python -m bench [--quick] [--only NAME]`: run the suite, write JSON + Markdown.

Results go to bench/results/<timestamp>.json and .md; docs/benchmarks.md quotes
the latest run. Everything is measured side by side in one run, so ratios are
meaningful even on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench import datasets, ingest

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", choices=["ingest", "http"], default=None)
    args = parser.parse_args(argv)
    n = 5_000 if args.quick else 50_000
    n_concurrent = 2_000 if args.quick else 20_000
    results: dict[str, Any] = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    lines = datasets.load_lines(datasets.signed_lines(n))
    if args.only in (None, "ingest"):
        conc = datasets.load_lines(datasets.signed_lines(n_concurrent, prefix="conc"))
        results["ingest"] = ingest.run(lines, conc)
        print(json.dumps(results["ingest"], indent=2), flush=True)
    if args.only in (None, "http"):
        from bench import http_load

        results["http"] = http_load.run(lines, quick=args.quick)
        print(json.dumps(results["http"], indent=2), flush=True)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"{stamp}.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS / (stamp + '.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
