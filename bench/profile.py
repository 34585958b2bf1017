"""Where the server's time goes: py-spy sampling a real server under wrk load.

`py-spy record --pid` samples the unmodified server from outside while wrk
drives one workload, with `--function` so samples aggregate per function.
Two views:

* `--gil` (the primary one): only the thread holding the GIL is sampled, i.e.
  what the Python interpreter is busy with. One CPython process runs Python on
  one core at a time, so this is what bounds requests/s; SQLite steps, fsync,
  Ed25519 and socket I/O release the GIL and show up only around their calls.
* all threads: every thread not blocked in a wait (waits on a Condition, an
  Event or a queue are dropped as idle). Threads waiting to *re-acquire* the
  GIL still count, at the frame they are stuck in, so read this one as "where
  are the request threads" rather than as CPU.

Per function: its self share (leaf samples) and its inclusive share (stacks
containing it); per package: self share. The raw collapsed stacks are kept
(flamegraph.pl or speedscope read them).

py-spy is a bench-only prerequisite: `.venv/bin/pip install py-spy==0.4.3`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import wrk
from bench.server import Server, work_dir

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "/stemedb/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker == "/stemedb/":
                file = "stemedb/" + file
            break
    return f"{match['func']} ({file})"


# Leaf frames that are a thread blocked, not working (py-spy's idle detection misses
# some futex waits when sampling without pausing the process): any `wait` method
# (Condition, Event, the writer's own completion flag, ...) and the usual blockers.
WAITING = (
    "Thread.join (",
    "Thread._wait_for_tstate_lock (",
    "Queue.get (",
    "Semaphore.acquire (",
)


def is_waiting(frame: str) -> bool:
    name = frame.split(" (", 1)[0]
    return name == "wait" or name.endswith(".wait") or frame.startswith(WAITING)


PACKAGES = (
    ("waitress/", "waitress (HTTP server, asyncore loop)"),
    ("falcon/", "falcon (WSGI framework)"),
    ("pydantic", "pydantic (validation)"),
    ("nacl/", "PyNaCl (Ed25519)"),
    ("json/", "json (stdlib)"),
    ("prometheus_client/", "prometheus_client"),
    ("stemedb/api/", "stemedb.api"),
    ("stemedb/security/", "stemedb.security"),
    ("stemedb/lenses/", "stemedb.lenses"),
    ("stemedb/store/", "stemedb.store (SQLite calls included)"),
    ("stemedb/records/", "stemedb.records"),
    ("stemedb/canonical", "stemedb.canonical"),
    ("stemedb/service/", "stemedb.service"),
    ("stemedb/http/", "stemedb.http (waitress glue)"),
    ("stemedb/", "stemedb (other)"),
    ("threading.py", "threading (stdlib)"),
)


def _by_basename() -> dict[str, str]:
    """py-spy sometimes names a module by its bare file name: `(tier_policy.py)`. Map
    each file name that is unique in the source tree to its package's label."""
    root = Path(__file__).resolve().parent.parent / "stemedb"
    seen: dict[str, list[str]] = {}
    for path in root.rglob("*.py"):
        seen.setdefault(path.name, []).append("/" + path.relative_to(root.parent).as_posix())
    out = {}
    for name, paths in seen.items():
        if len(paths) == 1:
            label = next((label for marker, label in PACKAGES if marker in paths[0]), None)
            if label is not None:
                out[f"({name})"] = label
    return out


# ...and the names found in more than one package, as the service's (what they were)
BASENAMES = {
    **_by_basename(),
    **{f"({name})": "stemedb.service" for name in ("writes.py", "browse.py", "models.py")},
}


def package_of(frame: str) -> str:
    for marker, name in PACKAGES:
        if marker in frame:
            return name
    return BASENAMES.get(frame[frame.rfind(" (") + 1 :], "other")


def parse_collapsed(
    text: str,
) -> tuple[int, int, Counter[str], Counter[str], Counter[str]]:
    """(working samples, waiting samples, self, inclusive, self by package)."""
    total = waiting = 0
    self_: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f]
        if not frames:
            continue
        if is_waiting(frames[-1]):
            waiting += count
            continue
        total += count
        self_[frames[-1]] += count
        packages[package_of(frames[-1])] += count
        for f in set(frames):
            incl[f] += count
    return total, waiting, self_, incl, packages


def top(text: str, k: int = 15) -> dict[str, Any]:
    total, waiting, self_, incl, packages = parse_collapsed(text)
    if not total:
        return {"samples": 0, "self": [], "inclusive": [], "by_package": []}

    def pct(counter: Counter[str], n: int = k) -> list[dict[str, Any]]:
        return [
            {"function": f, "pct": round(100 * c / total, 1)} for f, c in counter.most_common(n)
        ]

    # Inclusive entries that are mere plumbing (thread bootstrap, waitress dispatch) are
    # at ~100% and say nothing; keep them out of the inclusive top list.
    plumbing = ("_bootstrap", "run (threading.py)", "handler_thread", "<module>", "runpy")
    inclusive = Counter({f: c for f, c in incl.items() if not any(p in f for p in plumbing)})
    return {
        "samples": total,
        "waiting_samples_excluded": waiting,
        "self": pct(self_),
        "inclusive": pct(inclusive, 25),
        "by_package": [
            {"package": name, "pct": round(100 * c / total, 1)}
            for name, c in packages.most_common()
        ],
    }


def record(
    srv: Server,
    kind: str,
    file: Path,
    out: Path,
    *,
    seconds: float,
    gil: bool = False,
    connections: int = 32,
    count: int = 0,
) -> dict[str, Any]:
    """wrk load for `seconds`; py-spy samples the middle `seconds - 2` s."""
    load: dict[str, Any] = {}

    def drive() -> None:
        load.update(wrk.run(srv, kind, file, seconds=seconds, connections=connections, count=count))

    return sample(srv, [drive], out, seconds=seconds, gil=gil, rps=lambda: load.get("rps"))


def sample(
    srv: Server,
    drivers: list[Callable[[], None]],
    out: Path,
    *,
    seconds: float,
    gil: bool,
    rps: Callable[[], float | None],
) -> dict[str, Any]:
    """Run the load `drivers` (threads, each about `seconds` long) while py-spy samples
    the server for the middle `seconds - 2` s; `rps()` is read once they are done."""
    exe = py_spy()
    if exe is None:
        return {"skipped": "py-spy not installed (pip install py-spy)"}
    threads = [threading.Thread(target=d) for d in drivers]
    for t in threads:
        t.start()
    cmd = [
        exe,
        "record",
        "--pid",
        str(srv.pid),
        "--duration",
        str(max(1, int(seconds) - 2)),
        "--rate",
        "400",
        "--function",
        "--nonblocking",
        "--format",
        "raw",
        "-o",
        str(out),
    ]
    if gil:
        cmd.append("--gil")
    done = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)
    for t in threads:
        t.join()
    if done.returncode != 0 or not out.exists():
        return {"skipped": f"py-spy failed: {done.stderr.decode()[-500:]}"}
    result = top(out.read_text())
    rate = rps()
    result["load_rps"] = rate
    result["gil_only"] = gil
    if gil:
        # Share of the sampled wall time some thread held the GIL (py-spy takes a
        # sample only then). Per request: GIL seconds / requests.
        possible = 400 * max(1, int(seconds) - 2)
        result["gil_held_share"] = round(result["samples"] / possible, 3)
        if rate:
            result["gil_ms_per_req"] = round(1000 * result["gil_held_share"] / rate, 3)
    return result


def record_import(source: Path, records: int, out: Path) -> dict[str, Any]:
    """py-spy runs `stemedb import FILE --db DIR` (first `records` lines) from start to end.

    Both threads (the importer's main thread and the writer) are sampled; with two
    threads and no HTTP the all-threads view is the CPU view.
    """
    exe = py_spy()
    if exe is None:
        return {"skipped": "py-spy not installed (pip install py-spy)"}
    with tempfile.TemporaryDirectory(prefix="stemedb-bench-", dir=work_dir()) as tmp:
        part = Path(tmp) / "part.ndjson"
        with source.open() as src, part.open("w") as dst:
            for _, line in zip(range(records), src, strict=False):
                dst.write(line)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
        env["STEMEDB_SYNC"] = "full"
        cmd = [
            exe,
            "record",
            "--rate",
            "400",
            "--function",
            "--nonblocking",
            "--format",
            "raw",
            "-o",
            str(out),
            "--",
            sys.executable,
            "-m",
            "stemedb.cli.main",
            "import",
            str(part),
            "--db",
            str(Path(tmp) / "db"),
            "--progress-file",
            str(Path(tmp) / "progress"),
        ]
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, env=env)
        elapsed = time.perf_counter() - started
    if done.returncode != 0 or not out.exists():
        return {"skipped": f"py-spy failed: {done.stderr.decode()[-500:]}"}
    result = top(out.read_text())
    result["load_rps"] = round(records / elapsed)
    result["gil_only"] = False
    return result


def run(n: int, bodies: Path, out_dir: Path, *, seconds: float) -> dict[str, Any]:
    """Profile the authority query path at n assertions and the single-write path.

    Each workload twice: all active threads, then the GIL holder only. The raw
    collapsed stacks are kept in `out_dir` (flamegraph.pl or speedscope read them).
    """
    from bench import dbcache
    from bench.server import server

    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"raw_dir": str(out_dir)}
    data = dbcache.copy_to(n, dbcache.fresh_dir())
    try:
        paths = wrk.write_lines(data / "authority.paths", dbcache.lens_paths(n, "authority"))
        s, p = dbcache.WIDE
        wide = wrk.write_lines(
            data / "wide.paths", [f"/v1/query?subject={s}&predicate={p}&lens=authority"]
        )
        with server(data=data) as srv:
            for name, file, gil in (
                ("query_authority_gil", paths, True),
                ("query_authority", paths, False),
                ("query_authority_wide_gil", wide, True),
            ):
                results[name] = record(
                    srv, "paths", file, out_dir / f"{name}.txt", seconds=seconds, gil=gil
                )
                print(f"  profile {name}: {results[name].get('self', [])[:5]}", flush=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    for gil in (True, False):
        name = f"single_write{'_gil' if gil else ''}"
        with server() as srv:
            results[name] = record(
                srv,
                "bodies",
                bodies,
                out_dir / f"{name}.txt",
                seconds=seconds,
                gil=gil,
                count=int(5000 * seconds),
            )
        print(f"  profile {name}: {results[name].get('self', [])[:5]}", flush=True)
    from bench import datasets

    source = datasets.signed_lines(20_000)
    results["import_db"] = record_import(source, 20_000, out_dir / "import_db.txt")
    print(f"  profile import_db: {results['import_db'].get('self', [])[:5]}", flush=True)
    return results
