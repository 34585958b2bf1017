"""`python -m bench`: run the benchmark suite, write bench/results/<stamp>.json and .md.

    python -m bench                          # everything (20-40 min on 2 cores)
    python -m bench --quick                  # smoke run: small sizes, short runs (~5 min)
                                             # (plots of non-full-size runs go to bench/results/)
    python -m bench --only ingest,writes     # some sections
    python -m bench --size 100000            # loaded database size for queries/startup/mixed
    python -m bench --report bench/results/X.json   # re-render the Markdown of a run

Sections: ingest, writes, queries (lenses, point reads and RSS at --size),
read_threads (authority at --size with STEMEDB_THREADS 8/32/64), startup
(start-up, `stemedb verify --full`, `stemedb reindex` at --size), scale (10k/100k/1M
= size/100, size/10, size; the plot), mixed (80/20 for 60 s), profile (py-spy),
floor (HTTP batch ingest vs the strict floor, verify pool vs serial: bench/floor.py),
peers (Datasette and a Postgres app side by side at --size: bench/peers.py; it
installs its own prerequisites, a venv in bench/.cache/venv-bench and, as root,
the Debian packages wrk and postgresql).
`http` means writes+queries+mixed.

Everything is measured side by side in one run, interleaved round by round,
so ratios are meaningful even on a shared, noisy machine. Prerequisites
beyond the project's dev install: `wrk` (Debian package), and for the plot
and the profile `.venv/bin/pip install matplotlib==3.11.2 py-spy`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import datasets, report
from bench.server import loadavg, work_dir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = (
    "ingest",
    "writes",
    "queries",
    "read_threads",
    "startup",
    "scale",
    "mixed",
    "profile",
    "peers",
    "floor",
)
ALIASES = {"http": ("writes", "queries", "mixed"), "all": SECTIONS}


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def fsync_probe(samples: int = 50) -> float:
    """p50 of write(4 KiB) + fsync in the bench's work directory, in ms."""
    times = []
    with tempfile.NamedTemporaryFile(dir=work_dir()) as f:
        for _ in range(samples):
            f.write(b"x" * 4096)
            f.flush()
            started = time.perf_counter()
            os.fsync(f.fileno())
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return round(times[len(times) // 2], 2)


def code_digest() -> str:
    """Content hash of stemedb/ and migrations/: did the product change during the run?"""
    digest = hashlib.sha256()
    for folder in ("stemedb", "migrations"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".sql"):
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def machine() -> dict[str, Any]:
    import apsw

    lscpu = _run(["lscpu"])
    model = next(
        (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    source = _run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", work_dir()])
    device = source.split()[0].rsplit("/", 1)[-1] if source else ""
    rota = Path(f"/sys/block/{device}/queue/rotational")
    disk = f"{source or '?'} ({'rotational=' + rota.read_text().strip() if rota.exists() else '?'})"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "disk": f"disk {disk}, virtualised" if "hypervisor" in lscpu.lower() else f"disk {disk}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": apsw.sqlite_lib_version(),
        "apsw": apsw.apswversion(),
        "wrk": _run(["wrk", "--version"]).splitlines()[0] if shutil.which("wrk") else None,
        "fsync_p50_ms": fsync_probe(),
        "loadavg_start": loadavg(),
    }


def git_state() -> dict[str, Any]:
    status = _run(["git", "-C", str(ROOT), "status", "--short", "--", "stemedb", "migrations"])
    return {
        "head": _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "dirty_files": len([line for line in status.splitlines() if line.strip()]),
    }


def prerequisites(sections: set[str], plot: bool) -> list[str]:
    missing = []
    if sections & {"writes", "queries", "read_threads", "scale", "profile"} and not shutil.which(
        "wrk"
    ):
        missing.append("wrk is missing: apt-get install wrk")
    if "scale" in sections and plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            missing.append(
                "matplotlib is missing (a bench-only prerequisite, not a project dependency): "
                f"{Path(sys.executable).parent}/pip install matplotlib==3.11.2"
            )
    if "peers" in sections:
        from bench import peers_procs

        missing.extend(peers_procs.ensure_setup())
    if "profile" in sections:
        from bench.profile import py_spy

        if py_spy() is None:
            missing.append(
                "py-spy is missing (bench-only): "
                f"{Path(sys.executable).parent}/pip install py-spy==0.4.3"
            )
    return missing


def parse_sections(text: str | None) -> list[str]:
    if not text:
        return list(SECTIONS)
    chosen: list[str] = []
    for part in text.split(","):
        name = part.strip()
        names = ALIASES.get(name, (name,))
        for n in names:
            if n not in SECTIONS:
                raise SystemExit(f"unknown section {n!r}; choose from {', '.join(SECTIONS)}")
            if n not in chosen:
                chosen.append(n)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, short runs (a smoke run)"
    )
    parser.add_argument(
        "--only", default=None, help=f"comma list of {', '.join(SECTIONS)} (or http, all)"
    )
    parser.add_argument("--size", type=int, default=None, help="loaded database size (1,000,000)")
    parser.add_argument("--seconds", type=float, default=None, help="each wrk run (10; quick 3)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (3; quick 1)")
    parser.add_argument("--mixed-seconds", type=float, default=None, help="mixed load (60)")
    parser.add_argument(
        "--ingest-records", type=int, default=None, help="records per ingest run (50,000)"
    )
    parser.add_argument("--plot", default=str(ROOT / "docs" / "img" / "scale.png"))
    parser.add_argument("--report", metavar="JSON", help="only re-render the Markdown of a run")
    args = parser.parse_args(argv)
    if args.report:
        print(report.render(json.loads(Path(args.report).read_text())))
        return 0
    quick = args.quick
    size = args.size or (10_000 if quick else 1_000_000)
    seconds = args.seconds or (3.0 if quick else 10.0)
    rounds = args.rounds or (1 if quick else 3)
    mixed_seconds = args.mixed_seconds or (10.0 if quick else 60.0)
    n_ingest = args.ingest_records or (5_000 if quick else 50_000)
    sections = parse_sections(args.only)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    plot_path = Path(args.plot)
    if (quick or size != 1_000_000) and args.plot == parser.get_default("plot"):
        # Only a full-size run replaces the plot the docs show.
        plot_path = RESULTS / f"scale-{stamp}.png"
    missing = prerequisites(set(sections), plot=True)
    if missing:
        print("python -m bench: missing prerequisites:\n  " + "\n  ".join(missing))
        return 2

    RESULTS.mkdir(exist_ok=True)
    digest_start = code_digest()
    results: dict[str, Any] = {
        "stamp": stamp,
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "git": git_state(),
        "config": {
            "size": size,
            "seconds": seconds,
            "rounds": rounds,
            "mixed_seconds": mixed_seconds,
            "ingest_records": n_ingest,
            "sections": sections,
            "env": "STEMEDB_SYNC=full STEMEDB_QUERY_AUDIT=true rate limits off",
        },
    }
    print(json.dumps(results["machine"]), flush=True)
    out_json = RESULTS / f"{stamp}.json"

    def save() -> None:
        results["loadavg_end"] = loadavg()
        results["code_changed_during_run"] = code_digest() != digest_start
        out_json.write_text(json.dumps(results, indent=2))
        (RESULTS / f"{stamp}.md").write_text(report.render(results))

    write_bodies_total = 200_000
    sizes = [size // 100, size // 10, size]

    def timed(name: str, fn: Any, *fn_args: Any, **fn_kwargs: Any) -> None:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        results[name] = fn(*fn_args, **fn_kwargs)
        results.setdefault("section_seconds", {})[name] = round(time.perf_counter() - started)
        save()

    # Datasets and loaded databases first (cached; the first full run builds them).
    if set(sections) & {"queries", "read_threads", "startup", "scale", "mixed", "profile"}:
        from bench import dbcache

        builds: list[dict[str, Any]] = []
        for n in sorted({*sizes, size} if "scale" in sections else {size}):
            dbcache.database(n, builds)
        if builds:
            results["database_builds"] = builds
    bodies = datasets.signed_lines(write_bodies_total, prefix="writes")

    for name in sections:
        if name == "ingest":
            from bench import ingest

            timed(
                "ingest",
                ingest.run,
                datasets.load_lines(datasets.signed_lines(n_ingest)),
                datasets.load_lines(datasets.signed_lines(4000, prefix="conc")),
                rounds=rounds,
            )
        elif name == "writes":
            from bench import writes

            py_lines = datasets.load_lines(bodies, limit=int(4000 * seconds))
            timed(
                "writes", writes.run, bodies, seconds=seconds, rounds=rounds, python_lines=py_lines
            )
        elif name == "queries":
            from bench import queries

            timed("queries", queries.run, size, seconds=seconds, rounds=rounds)
        elif name == "read_threads":
            from bench import queries

            timed("read_threads", queries.thread_sweep, size, seconds=seconds, rounds=rounds)
        elif name == "startup":
            from bench import queries

            timed("startup", queries.startup, size, rounds=3)
        elif name == "scale":
            from bench import scale

            timed(
                "scale",
                scale.run,
                sizes,
                bodies,
                write_bodies_total,
                seconds=seconds,
                rounds=rounds,
            )
            results["scale"]["plot"] = str(scale.plot(results["scale"], plot_path))
        elif name == "mixed":
            from bench import mixed

            timed("mixed", mixed.run, size, datasets.load_lines(bodies), seconds=mixed_seconds)
        elif name == "floor":
            from bench import floor

            floor_lines = datasets.signed_lines(5_000 if quick else 20_000, prefix="floor")
            timed(
                "floor",
                floor.run,
                datasets.load_lines(floor_lines),
                rounds=rounds if quick else max(rounds, 5),
            )
            (RESULTS / f"{stamp}-floor.md").write_text(floor.markdown(results["floor"]) + "\n")
        elif name == "peers":
            from bench import peers

            timed("peers", peers.run, size, seconds=seconds, rounds=rounds)
            (RESULTS / f"{stamp}-peers.md").write_text(peers.markdown(results["peers"]) + "\n")
        elif name == "profile":
            from bench import profile

            timed(
                "profile",
                profile.run,
                size,
                bodies,
                RESULTS / f"{stamp}-profile",
                seconds=max(seconds, 12),
            )
    save()
    print((RESULTS / f"{stamp}.md").read_text())
    print(f"wrote {out_json} and {RESULTS / (stamp + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
