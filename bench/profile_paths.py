"""Where each of issue 21's workloads spends the server's one core: py-spy on a live server.

    python -m bench.profile_paths --size 100000 --seconds 12 --out docs/bench-results

One server (the bench's settings: `STEMEDB_SYNC=full`, query audit on, rate
limits and the new-agent limit off) on a copy of the cached database, and in
turn: `/v1/health`, `recency` and `authority` on random 10-candidate pairs
(32 connections), single writes (32 connections), and the mixed load (two wrk
at once: 26 connections of `authority` reads, 6 of single writes, close to
the 80/20 of `bench.mixed`; each wrk gives its own class's latency). py-spy
samples only the thread holding the GIL (`--gil`): with one CPython process
on its pinned core that is what bounds answers/s, so the shares below are the
profile of the limit. Reported per workload: answers/s, the GIL-held share,
GIL ms per answer, self time by package and the top functions; the raw
collapsed stacks are kept beside the JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from bench import datasets, dbcache, wrk
from bench.profile import sample
from bench.server import Server
from bench.writes import _batch_counters

MIXED_READERS, MIXED_WRITERS = 26, 6
ENV = {"STEMEDB_NEW_AGENTS_PER_HOUR": "0"}


def run(n: int, *, seconds: float, out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    bodies = datasets.signed_lines(200_000, prefix="writes")
    data = dbcache.copy_to(n, dbcache.fresh_dir())
    results: dict[str, Any] = {"assertions": n + dbcache.WIDE_COUNT, "seconds": seconds}
    srv = Server(data, ENV)
    try:
        health = wrk.write_lines(data / "health.paths", ["/v1/health"])
        lens = {
            name: wrk.write_lines(data / f"{name}.paths", dbcache.lens_paths(n, name))
            for name in ("recency", "authority")
        }
        used = 0  # single-write bodies are sent once each: every run starts past the last
        for name, kind, file in (
            ("health", "paths", health),
            ("recency", "paths", lens["recency"]),
            ("authority", "paths", lens["authority"]),
            ("single_writes", "bodies", bodies),
        ):
            load: dict[str, Any] = {}
            offset = used if kind == "bodies" else 0

            def drive(
                kind: str = kind,
                file: Path = file,
                load: dict[str, Any] = load,
                offset: int = offset,
            ) -> None:
                load.update(wrk.run(srv, kind, file, seconds=seconds, offset=offset))

            def rate(load: dict[str, Any] = load) -> float | None:
                return load.get("rps")

            batches = _batch_counters(srv)
            got = sample(srv, [drive], out_dir / f"{name}.txt", seconds=seconds, gil=True, rps=rate)
            if kind == "bodies":
                used += int(load.get("requests", 0)) + 64
            results[name] = {**got, "latency": _latency(load)}
            if kind == "bodies":
                results[name].update(_mean_batch(srv, batches))
            _print(name, results[name])
        reads: dict[str, Any] = {}
        writes: dict[str, Any] = {}

        def drive_reads() -> None:
            reads.update(
                wrk.run(srv, "paths", lens["authority"], seconds=seconds, connections=MIXED_READERS)
            )

        def drive_writes() -> None:
            writes.update(
                wrk.run(
                    srv, "bodies", bodies, seconds=seconds, connections=MIXED_WRITERS, offset=used
                )
            )

        batches = _batch_counters(srv)
        got = sample(
            srv, [drive_reads, drive_writes], out_dir / "mixed.txt", seconds=seconds, gil=True,
            rps=lambda: (reads.get("rps") or 0) + (writes.get("rps") or 0) or None,
        )  # fmt: skip
        results["mixed"] = {
            **got,
            "latency": {"reads": _latency(reads), "writes": _latency(writes)},
            "write_share": round(writes["rps"] / (reads["rps"] + writes["rps"]), 3),
            **_mean_batch(srv, batches),
        }
        _print("mixed", results["mixed"])
    finally:
        srv.stop()
        shutil.rmtree(data, ignore_errors=True)
    return results


def _mean_batch(srv: Server, before: tuple[float, float]) -> dict[str, Any]:
    """Records per group commit over the run (absent when nothing was written)."""
    total, commits = _batch_counters(srv)
    if commits <= before[1]:
        return {}
    return {"mean_group_commit": round((total - before[0]) / (commits - before[1]), 1)}


def _latency(load: dict[str, Any]) -> dict[str, Any]:
    keys = ("rps", "p50_ms", "p99_ms", "errors", "server_cpu_cores", "server_cpu_ms_per_req")
    return {k: load.get(k) for k in (*keys, "others_cpu_cores")}


def _print(name: str, r: dict[str, Any]) -> None:
    packages = ", ".join(f"{p['package']} {p['pct']}" for p in r.get("by_package", [])[:6])
    print(
        f"{name}: {r.get('load_rps')}/s, GIL {r.get('gil_held_share')} "
        f"({r.get('gil_ms_per_req')} ms/answer); {packages}",
        flush=True,
    )


def markdown(res: dict[str, Any]) -> str:
    """Per workload: the rate, GIL per answer, and the shares by package (one table)."""
    names = [w for w in ("health", "recency", "authority", "single_writes", "mixed") if w in res]
    packages: list[str] = []
    for w in names:
        for p in res[w].get("by_package", []):
            if p["package"] not in packages:
                packages.append(p["package"])
    head = "| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = [
        "| answers/s | " + " | ".join(f"{res[w].get('load_rps'):,.0f}" for w in names) + " |",
        "| GIL ms per answer | " + " | ".join(str(res[w].get("gil_ms_per_req")) for w in names)
        + " |",
        "| server CPU ms per answer | " + " | ".join(_cpu(res[w]) for w in names) + " |",
    ]  # fmt: skip
    for p in packages:
        cells = []
        for w in names:
            pct = next((x["pct"] for x in res[w].get("by_package", []) if x["package"] == p), 0)
            cells.append(f"{pct} %")
        rows.append(f"| {p} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def _cpu(r: dict[str, Any]) -> str:
    """Server CPU per answer; the mixed load's two wrk sample the same server twice."""
    lat = r.get("latency", {})
    if "reads" in lat:
        cpu = lat["reads"].get("server_cpu_cores") or 0.0
        rate = r.get("load_rps") or 0.0
        return f"{1000 * cpu / rate:.3f}" if rate else "-"
    return str(lat.get("server_cpu_ms_per_req"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile_paths", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out)
    res = run(args.size, seconds=args.seconds, out_dir=out / f"profile-paths-{stamp}")
    (out / f"profile-paths-{stamp}.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / f"profile-paths-{stamp}.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
