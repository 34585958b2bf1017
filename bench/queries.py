"""Lens queries and memory; start-up, verify and reindex on a loaded database.

One server on a private copy of `dbcache.database(n)` (1M assertions in the
full run). 32 keep-alive wrk connections, each request a random pair of the
10-candidate pairs (or the one 1,000-candidate pair, or a random assertion by
hash), lenses interleaved round by round. RSS is sampled every 0.5 s during
the load. Start-up is spawn → `/v1/ready` 200, on the loaded copy and on an
empty database, alternating. `stemedb verify --full` and `stemedb reindex`
run as the CLI on the copy after the server stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import dbcache, wrk
from bench.server import Server, server, stop_all, work_dir

KINDS = (
    "authority",
    "recency",
    "consensus",
    "skeptic",
    "authority_wide",
    "get_by_hash",
    "health",
)


def _paths(n: int, kind: str) -> list[str]:
    if kind == "authority_wide":
        s, p = dbcache.WIDE
        return [f"/v1/query?subject={s}&predicate={p}&lens=authority"]
    if kind == "health":  # the HTTP layer alone: what any request costs before its handler
        return ["/v1/health"]
    if kind == "get_by_hash":
        return [f"/v1/assertions/{h}" for h in dbcache.sample_hashes(n, 20_000)]
    return dbcache.lens_paths(n, kind)


def startup(n: int, rounds: int) -> dict[str, Any]:
    """Spawn → ready on the loaded database vs an empty one, alternating; then
    `stemedb verify --full` and `stemedb reindex` on the loaded copy."""
    loaded: list[float] = []
    empty: list[float] = []
    data = dbcache.copy_to(n, dbcache.fresh_dir())
    try:
        for _ in range(rounds):
            srv = Server(data)
            loaded.append(srv.startup_s)
            srv.stop()
            with server() as fresh:
                empty.append(fresh.startup_s)
        cold = _cold_startups(data, rounds)
        out: dict[str, Any] = {
            "assertions": n + dbcache.WIDE_COUNT,
            **({"cold_s": round(statistics.median(cold), 3), "cold_runs": cold} if cold else {}),
            "loaded_s": round(statistics.median(loaded), 3),
            "empty_s": round(statistics.median(empty), 3),
            "loaded_runs": [round(v, 3) for v in loaded],
            "empty_runs": [round(v, 3) for v in empty],
        }
        print(f"  start-up: {out}", flush=True)
        out.update(verify_and_reindex(data))
        print(f"  verify/reindex: {out['verify_full']} {out['reindex']}", flush=True)
    finally:
        shutil.rmtree(data)
    return out


def _cold_startups(data: Path, rounds: int) -> list[float]:
    """Start-up with the OS page cache dropped first (root only: it empties the
    cache of the whole machine, so it runs only with BENCH_DROP_CACHES=1)."""
    drop = Path("/proc/sys/vm/drop_caches")
    if os.environ.get("BENCH_DROP_CACHES") != "1" or os.geteuid() != 0:
        return []
    runs = []
    for _ in range(rounds):
        os.sync()
        drop.write_text("3\n")
        srv = Server(data)
        runs.append(round(srv.startup_s, 3))
        srv.stop()
    return runs


def _cli(args: list[str]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "stemedb.cli.main", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"stemedb {args[0]} failed: {done.stderr.decode()[-2000:]}")
    return elapsed, json.loads(done.stdout)


def verify_and_reindex(data: Path) -> dict[str, Any]:
    db = str(data / "db" / "stemedb.db")
    out: dict[str, Any] = {}
    wall, report = _cli(["verify", "--full", "--db", db, "--format", "json"])
    frames = int(report["frames_checked"])
    out["verify_full"] = {
        "ok": report["ok"],
        "frames": frames,
        "wall_s": round(wall, 1),
        "frames_per_s": round(frames / wall),
        "tool_seconds": report.get("seconds"),
    }
    wall, report = _cli(["reindex", "--db", db])
    frames = int(report["frames"])
    out["reindex"] = {
        "frames": frames,
        "wall_s": round(wall, 1),
        "frames_per_s": round(frames / wall),
        "tool_seconds": report.get("seconds"),
    }
    return out


def run(n: int, *, seconds: float, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "assertions": n + dbcache.WIDE_COUNT,
        "db_bytes": dbcache.db_bytes(n),
        "seconds": seconds,
        "rounds": rounds,
        "connections": 32,
    }
    per_kind: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    rss_idle: float
    with tempfile.TemporaryDirectory(prefix="stemedb-bench-", dir=work_dir()) as tmp:
        data = dbcache.copy_to(n, Path(tmp))
        files = {}
        for kind in KINDS:
            files[kind] = wrk.write_lines(Path(tmp) / f"{kind}.paths", _paths(n, kind))
        with server(data=data) as srv:
            rss_idle = srv.rss_mb()
            for r in range(rounds):
                for kind in KINDS:
                    result = wrk.run(srv, "paths", files[kind], seconds=seconds)
                    per_kind[kind].append(result)
                    print(
                        f"  queries round {r + 1}/{rounds} {kind}: {result['rps']} q/s"
                        f" p50 {result['p50_ms']} p99 {result['p99_ms']} ms"
                        f" rss {result['server_rss_max_mb']} MB errors {result['errors']}",
                        flush=True,
                    )
            rss_end = srv.rss_mb()
    keys = (
        "rps",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "server_cpu_cores",
        "server_cpu_ms_per_req",
        "server_sys_share",
        "client_cpu_cores",
        "others_cpu_cores",
        "server_rss_max_mb",
    )
    for kind, rows in per_kind.items():
        out[kind] = {k: round(statistics.median(r[k] for r in rows), 2) for k in keys}
        out[kind]["errors"] = sum(r["errors"] for r in rows)
        out[kind]["runs"] = [{k: r[k] for k in ("rps", "p50_ms", "p99_ms")} for r in rows]
    out["rss_idle_mb"] = round(rss_idle, 1)
    # RSS only grows (freed Python memory and SQLite page caches stay resident), and
    # the kinds run in order: the first round's 10-candidate lenses see no effect
    # of the 1,000-candidate pair or of random point reads over the whole file.
    out["rss_lens_load_mb"] = max(
        per_kind[k][0]["server_rss_max_mb"]
        for k in ("authority", "recency", "consensus", "skeptic")
    )
    out["rss_max_under_load_mb"] = max(
        r["server_rss_max_mb"] for rows in per_kind.values() for r in rows
    )
    out["rss_end_mb"] = round(rss_end, 1)
    return out


def thread_sweep(n: int, *, seconds: float, rounds: int) -> dict[str, Any]:
    """`authority` at n assertions with STEMEDB_THREADS = 8 / 32 / 64, side by side,
    plus the defaults with `STEMEDB_CPU_AFFINITY=off` (not pinned to one core)
    and with `STEMEDB_ACTIVE_REQUESTS=0` (no FIFO admission), and with
    `STEMEDB_INLINE_READS=false` (every query handed to a worker thread).

    One server per setting on its own copy, all running at once; each round
    runs the settings in turn. The write sweep (bench.writes) shows what fewer
    threads cost writes; this shows what they do for reads, and the last two
    show what the defaults that pin one core, admit two requests at a time and
    serve quick reads on the event loop are worth.
    """
    configs: dict[str, tuple[dict[str, str], str | None]] = {
        "8": ({"STEMEDB_THREADS": "8"}, None),
        "32": ({"STEMEDB_THREADS": "32"}, None),
        "64": ({"STEMEDB_THREADS": "64"}, None),
        "32, affinity off": ({"STEMEDB_THREADS": "32", "STEMEDB_CPU_AFFINITY": "off"}, None),
        "32, no admission": ({"STEMEDB_THREADS": "32", "STEMEDB_ACTIVE_REQUESTS": "0"}, None),
        "32, inline off": ({"STEMEDB_THREADS": "32", "STEMEDB_INLINE_READS": "false"}, None),
    }
    dirs = {c: dbcache.copy_to(n, dbcache.fresh_dir()) for c in configs}
    servers: dict[str, Server] = {}
    per: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    try:
        first = next(iter(configs))
        paths = wrk.write_lines(dirs[first] / "authority.paths", _paths(n, "authority"))
        for c, (env, cpus) in configs.items():
            servers[c] = Server(dirs[c], env, cpus=cpus)
        for r in range(rounds):
            for c in configs:
                result = wrk.run(servers[c], "paths", paths, seconds=seconds)
                per[c].append(result)
                print(
                    f"  read threads round {r + 1}/{rounds} threads={c}: {result['rps']} q/s"
                    f" p50 {result['p50_ms']} p99 {result['p99_ms']} ms"
                    f" cpu/q {result['server_cpu_ms_per_req']} ms",
                    flush=True,
                )
    finally:
        stop_all(servers.values(), dirs.values())
    keys = (
        "rps",
        "p50_ms",
        "p99_ms",
        "server_cpu_cores",
        "server_cpu_ms_per_req",
        "server_sys_share",
        "others_cpu_cores",
    )
    out: dict[str, Any] = {"assertions": n + dbcache.WIDE_COUNT, "seconds": seconds}
    for c, rows in per.items():
        out[c] = {k: round(statistics.median(r[k] for r in rows), 3) for k in keys}
        out[c]["errors"] = sum(r["errors"] for r in rows)
    return out
