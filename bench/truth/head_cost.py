"""`truth` vs `authority` at the head of a large database, side by side (issue 18).

    .venv/bin/python -m bench.truth.head_cost [--n 1000000] [--queries 2000] [--keep DIR]

A private copy of the cached bench database (bench/dbcache.py: 1,000,000
signed assertions, 10 per (subject, predicate) pair, 64 agents); the copy is
migrated and its reliability table (store/truth_state.py) built by
`truth_state.rebuild` (what `stemedb reindex` does for these tables, timed
here); then one server and one keep-alive client ask single pairs, the same
random pairs for both lenses, alternating which lens goes first, and report
the medians and their ratio. The cache itself is never modified.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from bench import dbcache
from bench.server import server
from stemedb.store import schema, truth_state

LENSES = ("authority", "truth")


def _prepare(n: int, keep: Path | None) -> tuple[Path, dict[str, Any]]:
    if keep is not None and (keep / "db" / "stemedb.db").exists():
        return keep, {"reused": str(keep)}  # prepared by an earlier --keep run
    data = dbcache.copy_to(n, keep or dbcache.fresh_dir())
    conn = schema.connect(data / "db" / "stemedb.db")
    try:
        started = time.perf_counter()
        schema.apply_migrations(conn)
        migrated = time.perf_counter() - started
        started = time.perf_counter()
        with conn:
            replayed = truth_state.rebuild(conn)
        built = time.perf_counter() - started
        agents = int(next(iter(conn.execute("SELECT count(*) FROM truth_agents")))[0])
    finally:
        conn.close()
    info = {
        "migrate_s": round(migrated, 1),
        "table_rebuild_s": round(built, 1),
        "records_replayed": replayed,
        "agents": agents,
    }
    return data, info


def run(n: int, queries: int, seed: int = 18, keep: Path | None = None) -> dict[str, Any]:
    data, info = _prepare(n, keep)
    print(json.dumps(info), flush=True)
    rng = random.Random(seed)
    pairs = dbcache.pairs(n)
    chosen = [pairs[rng.randrange(len(pairs))] for _ in range(queries)]
    samples: dict[str, list[float]] = {lens: [] for lens in LENSES}
    try:
        _ask(data, chosen, samples, queries)
    finally:
        if keep is None:
            shutil.rmtree(data, ignore_errors=True)  # the private copy
    out: dict[str, Any] = {"assertions": n, "queries_per_lens": len(samples["truth"]), **info}
    for lens, values in samples.items():
        values.sort()
        out[lens] = {
            "p50_ms": round(statistics.median(values), 3),
            "p90_ms": round(values[int(0.9 * (len(values) - 1))], 3),
            "mean_ms": round(statistics.fmean(values), 3),
        }
    out["ratio_p50"] = round(out["truth"]["p50_ms"] / out["authority"]["p50_ms"], 3)
    out["ratio_mean"] = round(out["truth"]["mean_ms"] / out["authority"]["mean_ms"], 3)
    return out


def _ask(
    data: Path, chosen: list[tuple[str, str]], samples: dict[str, list[float]], queries: int
) -> None:
    env = {"STEMEDB_RATE_LIMIT_READ": "0", "STEMEDB_QUERY_AUDIT": "false"}
    with server(env, data=data) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        for i, (subject, predicate) in enumerate(chosen):
            order = LENSES if i % 2 == 0 else tuple(reversed(LENSES))
            for lens in order:
                path = f"/v1/query?subject={subject}&predicate={predicate}&lens={lens}"
                started = time.perf_counter()
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    raise RuntimeError(f"{path}: {response.status} {body[:300]!r}")
                if i >= queries // 10:  # the first tenth warms the caches
                    samples[lens].append(elapsed * 1000)
                if lens == "truth" and i == 0:
                    truth = json.loads(body)["results"][0]["truth"]
                    if truth["source"] != "table":
                        raise RuntimeError(f"truth did not use the table: {truth}")
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.truth.head_cost")
    parser.add_argument("--n", type=int, default=1_000_000, help="assertions (cached database)")
    parser.add_argument("--queries", type=int, default=2000, help="pairs asked, per lens")
    parser.add_argument(
        "--keep", type=Path, help="prepare the copy here and keep it; reuse it when present"
    )
    parser.add_argument("--seed", type=int, default=18, help="which random pairs")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.n, args.queries, args.seed, args.keep), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
