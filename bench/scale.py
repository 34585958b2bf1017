"""Flat cost as data grows: the same probes at each database size, side by side.

One server per size runs at the same time (each on a private copy of
`dbcache.database(n)`, fresh every round); every round runs each probe on
every size in turn, so noise from the shared machine is spread across sizes
instead of landing on one. Reads run before writes in a round, so they see
exactly n assertions.

Probes (wrk):
* `write_c1`  — single signed writes from 1 connection (latency, no queueing);
* `write_c32` — single writes from 32 connections (throughput and loaded latency);
* `get_c1`, `get_c32` — `GET /v1/assertions/{hash}` of random assertions;
* `authority_c1` — `/v1/query?...&lens=authority` on random 10-candidate pairs.

The flatness figure for each probe is max/min over sizes of the median p50
(target ≤ 1.3). `plot()` draws docs/img/scale.png.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from bench import dbcache, wrk
from bench.server import Server, stop_all
from bench.writes import wrk_writes

PROBES = ("get_c1", "get_c32", "authority_c1", "write_c1", "write_c32")


def _probe(
    srv: Server,
    probe: str,
    files: dict[tuple[int, str], Path],
    n: int,
    bodies: Path,
    bodies_total: int,
    offsets: dict[int, int],
    seconds: float,
) -> dict[str, Any]:
    conns = 32 if probe.endswith("c32") else 1
    if not probe.startswith("write"):
        file = files[n, "get" if probe.startswith("get") else "authority"]
        return wrk.run(srv, "paths", file, seconds=seconds, connections=conns)
    # Enough bodies for 5,000 writes/s; no more (wrk holds them all in memory).
    count = min(bodies_total - offsets[n], int(5000 * seconds) + 1000)
    result = wrk_writes(
        srv, bodies, seconds=seconds, connections=conns, offset=offsets[n], count=count
    )
    # One wrk thread sends its bodies in file order: at most the answered ones plus
    # one in flight per connection were used.
    offsets[n] += result["requests"] + conns
    result["rps"] = result["acked_writes_per_s"]
    return result


def run(
    sizes: list[int], bodies: Path, bodies_total: int, *, seconds: float, rounds: int
) -> dict[str, Any]:
    for n in sizes:
        dbcache.database(n)
    per: dict[int, dict[str, list[dict[str, Any]]]] = {n: {p: [] for p in PROBES} for n in sizes}
    files_dir = dbcache.fresh_dir()
    try:
        files: dict[tuple[int, str], Path] = {}
        for n in sizes:
            get = [f"/v1/assertions/{h}" for h in dbcache.sample_hashes(n, 20_000)]
            files[n, "get"] = wrk.write_lines(files_dir / f"get-{n}.paths", get)
            lens = dbcache.lens_paths(n, "authority")
            files[n, "authority"] = wrk.write_lines(files_dir / f"authority-{n}.paths", lens)
        for r in range(rounds):
            # Every round starts from exact copies, so writes of earlier rounds never
            # make the small database bigger; reads run before writes in a round.
            dirs = {n: dbcache.copy_to(n, dbcache.fresh_dir()) for n in sizes}
            servers: dict[int, Server] = {}
            offsets = dict.fromkeys(sizes, 0)
            try:
                for n in sizes:
                    servers[n] = Server(dirs[n])
                for probe in PROBES:
                    for n in sizes:
                        result = _probe(
                            servers[n], probe, files, n, bodies, bodies_total, offsets, seconds
                        )
                        per[n][probe].append(result)
                        print(
                            f"  scale round {r + 1}/{rounds} {probe} n={n}: {result['rps']}/s"
                            f" p50 {result['p50_ms']} p99 {result['p99_ms']} ms"
                            f" errors {result['errors']}",
                            flush=True,
                        )
            finally:
                stop_all(servers.values(), dirs.values())
    finally:
        shutil.rmtree(files_dir, ignore_errors=True)
    out: dict[str, Any] = {"sizes": sizes, "seconds": seconds, "rounds": rounds}
    for n in sizes:
        out[str(n)] = {
            probe: {
                k: round(statistics.median(r[k] for r in rows), 3)
                for k in (
                    "rps",
                    "p50_ms",
                    "p90_ms",
                    "p99_ms",
                    "server_cpu_cores",
                    "server_cpu_ms_per_req",
                    "others_cpu_cores",
                )
            }
            | {"errors": sum(r["errors"] for r in rows)}
            for probe, rows in per[n].items()
        }
    out["flatness_p50"] = {
        probe: round(
            max(out[str(n)][probe]["p50_ms"] for n in sizes)
            / min(out[str(n)][probe]["p50_ms"] for n in sizes),
            2,
        )
        for probe in PROBES
    }
    out["flatness_p99"] = {
        probe: round(
            max(out[str(n)][probe]["p99_ms"] for n in sizes)
            / min(out[str(n)][probe]["p99_ms"] for n in sizes),
            2,
        )
        for probe in PROBES
    }
    out["flatness_rps"] = {
        probe: round(
            max(out[str(n)][probe]["rps"] for n in sizes)
            / min(out[str(n)][probe]["rps"] for n in sizes),
            2,
        )
        for probe in PROBES
    }
    return out


def plot(result: dict[str, Any], path: Path) -> Path:
    """Two panels: latency (p50 solid, p99 dashed) and throughput at 32 clients, vs size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = result["sizes"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.2))
    labels = {
        "write_c1": "single write, 1 client",
        "write_c32": "single write, 32 clients",
        "get_c1": "GET by hash, 1 client",
        "get_c32": "GET by hash, 32 clients",
        "authority_c1": "authority lens, 1 client",
    }
    colours = {
        "write_c1": "tab:red",
        "write_c32": "tab:orange",
        "get_c1": "tab:blue",
        "get_c32": "tab:cyan",
        "authority_c1": "tab:green",
    }
    for probe in ("write_c1", "get_c1", "authority_c1", "write_c32"):
        p50 = [result[str(n)][probe]["p50_ms"] for n in sizes]
        p99 = [result[str(n)][probe]["p99_ms"] for n in sizes]
        left.plot(sizes, p50, "o-", color=colours[probe], label=f"{labels[probe]} p50")
        left.plot(sizes, p99, "o--", color=colours[probe], alpha=0.5, label="  p99")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("assertions stored")
    left.set_ylabel("latency (ms)")
    left.set_title("Latency vs data size (p50 solid, p99 dashed)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    for probe in ("write_c32", "get_c32"):
        rps = [result[str(n)][probe]["rps"] for n in sizes]
        right.plot(sizes, rps, "o-", color=colours[probe], label=labels[probe])
    right.set_xscale("log")
    right.set_ylim(bottom=0)
    right.set_xlabel("assertions stored")
    right.set_ylabel("requests/s")
    right.set_title("Throughput vs data size (32 keep-alive clients)")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    fig.suptitle(
        "StemeDB: cost as data grows (2 cores, STEMEDB_SYNC=full, audit on; medians of rounds)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
