"""Lens query latency by candidates per pair: 10, 100 and 1,000 (issue #4).

`python -m bench.lens_latency [--queries N]`. One server, three signed pairs
(10, 100 and 1,000 candidates), one keep-alive client sending queries one at a
time, lenses and pair sizes interleaved round by round so machine noise hits
every cell alike. Reports median and p99 per (lens, size) as JSON and Markdown.
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from typing import Any

from bench import datasets
from bench.server import server
from bench.stats import markdown_table, summary_ms

SIZES = (10, 100, 1000)
LENSES = ("recency", "authority", "consensus", "trust", "skeptic", "layered")
NDJSON = {"Content-Type": "application/x-ndjson"}


def _load(srv: Any) -> dict[int, tuple[str, str]]:
    pairs = {}
    for size in SIZES:
        lines = datasets.load_lines(datasets.signed_lines(size, size, prefix=f"lat{size}"))
        status, body = srv.request(
            "POST", "/v1/assert/batch", ("\n".join(lines) + "\n").encode(), NDJSON
        )
        if status != 200 or json.loads(body)["rejected"]:
            raise RuntimeError(f"load failed: {status} {body[:200]!r}")
        first = json.loads(lines[0])
        pairs[size] = (first["subject"], first["predicate"])
    return pairs


def run(queries: int = 200) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with server({"STEMEDB_RATE_LIMIT_READ": "0", "STEMEDB_RATE_LIMIT_WRITE": "0"}) as srv:
        pairs = _load(srv)
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        samples: dict[tuple[str, int], list[float]] = {(n, s): [] for n in LENSES for s in SIZES}
        for _ in range(queries):
            for lens in LENSES:
                for size in SIZES:
                    subject, predicate = pairs[size]
                    path = f"/v1/query?subject={subject}&predicate={predicate}&lens={lens}"
                    started = time.perf_counter()
                    conn.request("GET", path)
                    response = conn.getresponse()
                    response.read()
                    samples[(lens, size)].append(time.perf_counter() - started)
                    if response.status != 200:
                        raise RuntimeError(f"{path}: {response.status}")
        conn.close()
    for (lens, size), values in samples.items():
        results[f"{lens}/{size}"] = {"lens": lens, "candidates": size, **summary_ms(values)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lens_latency")
    parser.add_argument("--queries", type=int, default=200, help="queries per (lens, size)")
    args = parser.parse_args(argv)
    results = run(args.queries)
    print(json.dumps(results, indent=2))
    rows = list(results.values())
    print(markdown_table(rows, ["lens", "candidates", "n", "p50_ms", "p99_ms", "max_ms"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
