"""Tails and isolation (issue 21, part 3), side by side in one run.

    python -m bench.tails [--size 1000000] [--seconds 10] [--rounds 3] [--base DIR]
                          [--variant NAME:VAR=VALUE,...] [--only isolation,writes,mixed]

* `isolation`: one server per tree (this checkout as `new`, and `--base DIR`, a
  folder holding another tree's `stemedb/` and `migrations/`, as `base`), each on
  its own copy of the n-assertion database, rounds interleaved. Per round and
  tree: wrk, 32 connections, on random 10-candidate pairs with `authority`
  (its p50/p99); then wrk, 32 connections, on the 1,000-candidate pair while one
  more keep-alive client probes `/v1/health` and `/v1/ready` in turn every 20 ms
  (the pair's p99, and the probes' p50/p99/max: do they wait behind the large
  answers?). The same probes run during the `authority` load, and alone on the
  idle server as their floor.
  `--variant noaudit:STEMEDB_QUERY_AUDIT=false` adds this tree with other settings.
* `writes`: single writes from 1 wrk connection, servers on the 10k and the n
  database at once, alternating: p50/p99 and their ratio (flat = ≤ 1.3×).
* `mixed`: bench.mixed (80 % reads / 20 % writes, 32 clients) at n, for each
  tree in turn (`--mixed-rounds` times).

Writes JSON to bench/results/tails-<stamp>.json and prints a summary.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from bench import datasets, dbcache, mixed, wrk
from bench.server import Server, stop_all, work_dir
from bench.stats import percentile
from bench.writes import wrk_writes

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PROBE_EVERY_S = 0.02


class Prober:
    """A keep-alive client asking for health and ready in turn; latencies in ms."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        paths = ("/v1/health", "/v1/ready")
        i = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", paths[i % 2])
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    self.errors += 1
            except OSError:
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.latencies.append((time.perf_counter() - started) * 1000)
            i += 1
            self.stop.wait(PROBE_EVERY_S)
        conn.close()

    def __enter__(self) -> Prober:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)

    def summary(self) -> dict[str, Any]:
        ms = self.latencies
        return {
            "probes": len(ms),
            "probe_p50_ms": round(statistics.median(ms), 2) if ms else None,
            "probe_p99_ms": round(percentile(ms, 99), 2) if ms else None,
            "probe_max_ms": round(max(ms), 1) if ms else None,
            "probe_errors": self.errors,
        }


def _tree_env(tree: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(tree), "STEMEDB_LOG_LEVEL": "warning"}


def isolation(
    n: int,
    trees: dict[str, Path],
    *,
    seconds: float,
    rounds: int,
    envs: dict[str, dict[str, str]] | None = None,
    wide_too: bool = True,
) -> dict[str, Any]:
    # Other trees' servers run on these copies: the schema the cache was built with.
    dirs = {name: dbcache.copy_to(n, dbcache.fresh_dir(), upgraded=False) for name in trees}
    files_dir = dbcache.fresh_dir()
    per: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {"authority": [], "wide": [], "idle": []} for name in trees
    }
    servers: dict[str, Server] = {}
    try:
        authority = wrk.write_lines(
            files_dir / "authority.paths", dbcache.lens_paths(n, "authority")
        )
        s, p = dbcache.WIDE
        wide = wrk.write_lines(
            files_dir / "wide.paths", [f"/v1/query?subject={s}&predicate={p}&lens=authority"]
        )
        for name, tree in trees.items():
            env = {**_tree_env(tree), **(envs or {}).get(name, {})}
            servers[name] = Server(dirs[name], env)
        for r in range(rounds):
            for name, srv in servers.items():
                with Prober(srv.port) as idle:
                    time.sleep(min(3.0, seconds))
                per[name]["idle"].append(idle.summary())
                with Prober(srv.port) as prober:
                    result = wrk.run(srv, "paths", authority, seconds=seconds)
                result.update(prober.summary())
                per[name]["authority"].append(result)
                if wide_too:
                    with Prober(srv.port) as prober:
                        result = wrk.run(srv, "paths", wide, seconds=seconds)
                    result.update(prober.summary())
                per[name]["wide"].append(result)  # (the authority run again without it)
                a, w = per[name]["authority"][-1], per[name]["wide"][-1]
                print(
                    f"  tails round {r + 1}/{rounds} {name}: authority {a['rps']} q/s"
                    f" p50 {a['p50_ms']} p99 {a['p99_ms']} ms; wide {w['rps']} q/s"
                    f" p50 {w['p50_ms']} p99 {w['p99_ms']} ms; probes under wide p50"
                    f" {w['probe_p50_ms']} p99 {w['probe_p99_ms']} max {w['probe_max_ms']} ms"
                    f" (under authority p50 {a['probe_p50_ms']} p99 {a['probe_p99_ms']};"
                    f" idle p99 {per[name]['idle'][-1]['probe_p99_ms']})",
                    flush=True,
                )
    finally:
        stop_all(servers.values(), [*dirs.values(), files_dir])
    keys = ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_req", "others_cpu_cores")
    probe_keys = ("probe_p50_ms", "probe_p99_ms", "probe_max_ms")
    out: dict[str, Any] = {"assertions": n + dbcache.WIDE_COUNT, "trees": {}}
    for name, kinds in per.items():
        row: dict[str, Any] = {}
        for kind in ("authority", "wide"):
            row[kind] = {k: round(statistics.median(x[k] for x in kinds[kind]), 2) for k in keys}
            row[kind]["errors"] = sum(x["errors"] for x in kinds[kind])
            row[kind]["runs"] = [
                {k: x[k] for k in ("rps", "p50_ms", "p99_ms")} for x in kinds[kind]
            ]
        for kind in ("authority", "wide", "idle"):
            row[f"probes_{kind}"] = {
                k: round(statistics.median(x[k] for x in kinds[kind]), 2) for k in probe_keys
            }
            row[f"probes_{kind}"]["errors"] = sum(x["probe_errors"] for x in kinds[kind])
        out["trees"][name] = row
    return out


def writes_flat(n: int, small: int, *, seconds: float, rounds: int) -> dict[str, Any]:
    """Single writes, 1 connection, at `small` and `n` assertions side by side."""
    bodies_total = 200_000
    bodies = datasets.signed_lines(bodies_total, prefix="writes")
    sizes = [small, n]
    dirs = {size: dbcache.copy_to(size, dbcache.fresh_dir()) for size in sizes}
    servers: dict[int, Server] = {}
    per: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
    offsets = {small: 0, n: bodies_total // 2}  # distinct records for the two servers
    try:
        for size in sizes:
            servers[size] = Server(dirs[size], _tree_env(ROOT))
        for r in range(rounds):
            for size in sizes:
                count = int(2000 * seconds)
                result = wrk_writes(
                    servers[size],
                    bodies,
                    seconds=seconds,
                    connections=1,
                    offset=offsets[size],
                    count=count,
                )
                offsets[size] += result["requests"] + 1
                per[size].append(result)
                print(
                    f"  writes round {r + 1}/{rounds} n={size}: {result['acked_writes_per_s']}/s"
                    f" p50 {result['p50_ms']} p99 {result['p99_ms']} ms errors {result['errors']}",
                    flush=True,
                )
    finally:
        stop_all(servers.values(), dirs.values())
    out: dict[str, Any] = {}
    for size in sizes:
        rows = per[size]
        out[str(size)] = {
            k: round(statistics.median(x[k] for x in rows), 2)
            for k in ("acked_writes_per_s", "p50_ms", "p99_ms", "max_ms", "others_cpu_cores")
        } | {"errors": sum(x["errors"] for x in rows), "p99_runs": [x["p99_ms"] for x in rows]}
    ratios = [b["p99_ms"] / a["p99_ms"] for a, b in zip(per[small], per[n], strict=True)]
    out["p99_ratio_median"] = round(statistics.median(ratios), 2)
    out["p99_ratios"] = [round(x, 2) for x in ratios]
    return out


def mixed_side_by_side(
    n: int,
    trees: dict[str, Path],
    envs: dict[str, dict[str, str]],
    *,
    seconds: float,
    rounds: int,
) -> dict[str, Any]:
    """bench.mixed for each tree in turn, `rounds` times; medians of p50/p99 per class."""
    lines = datasets.load_lines(datasets.signed_lines(200_000, prefix="writes"))
    per: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for r in range(rounds):
        for name, tree in trees.items():
            env = {**_tree_env(tree), **envs.get(name, {})}
            result = mixed.run(n, lines, seconds=seconds, env=env)
            per[name].append(result)
            rd, wr = result["read"], result["write"]
            print(
                f"  mixed round {r + 1}/{rounds} {name}: reads {rd['per_s']}/s p50 {rd['p50_ms']}"
                f" p99 {rd['p99_ms']} ms; writes {wr['per_s']}/s p50 {wr['p50_ms']}"
                f" p99 {wr['p99_ms']} ms; errors {result['errors']}",
                flush=True,
            )
    out: dict[str, Any] = {}
    for name, rows in per.items():
        out[name] = {
            kind: {
                k: round(statistics.median(x[kind][k] for x in rows), 2)
                for k in ("per_s", "p50_ms", "p99_ms", "max_ms")
            }
            for kind in ("read", "write")
        } | {
            "errors": sum(x["errors"] for x in rows),
            "others_cpu_cores": [x.get("others_cpu_cores") for x in rows],
            "runs": [
                {kind: {k: x[kind][k] for k in ("p50_ms", "p99_ms")} for kind in ("read", "write")}
                for x in rows
            ],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mixed-seconds", type=float, default=60)
    parser.add_argument("--mixed-rounds", type=int, default=1)
    parser.add_argument("--base", type=Path, help="another tree (stemedb/, migrations/)")
    parser.add_argument(
        "--tree", action="append", default=[], help="NAME=DIR: one more tree, like --base"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME:VAR=VALUE[,VAR=VALUE]: this tree with other settings, in isolation",
    )
    parser.add_argument("--only", default="isolation,writes,mixed")
    parser.add_argument("--no-wide", action="store_true", help="isolation: authority only")
    args = parser.parse_args()
    os.chdir(work_dir())  # `python -m` puts the cwd first on the servers' sys.path
    only = set(args.only.split(","))
    trees = {"new": ROOT, **({"base": args.base.resolve()} if args.base else {})}
    for extra in args.tree:
        name, _, folder = extra.partition("=")
        trees[name] = Path(folder).resolve()
    envs: dict[str, dict[str, str]] = {}
    for variant in args.variant:
        name, _, settings = variant.partition(":")
        trees[name] = ROOT
        envs[name] = dict(kv.split("=", 1) for kv in settings.split(","))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out: dict[str, Any] = {"stamp": stamp, "args": {k: str(v) for k, v in vars(args).items()}}
    if "isolation" in only:
        out["isolation"] = isolation(
            args.size,
            trees,
            seconds=args.seconds,
            rounds=args.rounds,
            envs=envs,
            wide_too=not args.no_wide,
        )
    if "writes" in only:
        out["writes"] = writes_flat(args.size, args.small, seconds=args.seconds, rounds=args.rounds)
    if "mixed" in only:
        out["mixed"] = mixed_side_by_side(
            args.size, trees, envs, seconds=args.mixed_seconds, rounds=args.mixed_rounds
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"tails-{stamp}.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "args"}, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
