"""Hot-path profiling and A/B comparison of two source trees, side by side in one run.

The machine is shared and noisy, so every comparison runs both trees
interleaved (A, B, A, B, ...) and reports medians and the B/A ratio.

    python bench/profile_hotpath.py prepare                 # cached DB + write records
    python bench/profile_hotpath.py profile [--what query]  # cProfile top entries (this tree)
    python bench/profile_hotpath.py stages                  # query cost by stage (this tree)
    python bench/profile_hotpath.py ab-inproc --base DIR [--what query|health|write]
    python bench/profile_hotpath.py ab-http   --base DIR [--what query|health|write]
    python bench/profile_hotpath.py trace [--what query] [--env NAME=VALUE]
                                       # where a request's latency goes (queue/service/gap)

`--base DIR` is a copy of the tree to compare against (a folder holding
`stemedb/` and `migrations/`, e.g. made with `cp -a stemedb migrations DIR/`);
`--new DIR` defaults to this checkout. In-process runs call the WSGI app
directly (falcon.testing.create_environ) and report CPU µs per request,
including the writer thread's work (audit rows, commits) drained at the end.
HTTP runs start one `stemedb serve` per tree on a free port
(`STEMEDB_RATE_LIMIT_READ=0 STEMEDB_RATE_LIMIT_WRITE=0`) and load each with
`wrk -t2 -c32`, alternating.

Where the GIL goes in a live server (what limits a multi-threaded Python
server): `py-spy record --gil -f raw -p <server pid>` while wrk runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is sys.path[0]: its modules (profile.py, stats.py, ...)
# would shadow the standard library's. Import `bench.*` through the repository root.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
DB_CACHE = CACHE / "hotpath-5000-10"
WRITES_COUNT = 100_000
QUERY_DATASET = (5000, 10, "bench")
PYTHON = sys.executable

QUERY_LUA = """
local paths = {}
for line in io.lines(os.getenv("HOTPATH_INPUT")) do paths[#paths + 1] = line end
local i = 0
init = function(args) i = math.random(#paths) end
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
"""

WRITE_LUA = """
local counter = 0
local threads = {}
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
local bodies = {}
local i = 0
created = 0
other = 0
init = function(args)
  local n = 0
  local nthreads = tonumber(os.getenv("HOTPATH_THREADS"))
  for line in io.lines(os.getenv("HOTPATH_INPUT")) do
    if n % nthreads == id then bodies[#bodies + 1] = line end
    n = n + 1
  end
end
request = function()
  i = i + 1
  return wrk.format("POST", "/v1/assert", {["Content-Type"] = "application/json"},
                    bodies[((i - 1) % #bodies) + 1])
end
response = function(status, headers, body)
  if status == 201 then created = created + 1 else other = other + 1 end
end
done = function(summary, latency, requests)
  local c, o = 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    o = o + t:get("other")
  end
  io.write(string.format("HOTPATH_COUNTS %d %d\\n", c, o))
end
"""

DONE_LUA = """
done = function(summary, latency, requests)
  io.write(string.format(
    "HOTPATH_JSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p90_us\\":%d,"
    .. "\\"p99_us\\":%d,\\"errors\\":%d,\\"non2xx\\":%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


# ---- datasets ----------------------------------------------------------------


def _datasets() -> Any:
    sys.path.insert(0, str(ROOT))
    from bench import datasets

    return datasets


def prepare() -> None:
    """Build (once) the 5,000-assertion DB and a file of fresh signed records for writes."""
    datasets = _datasets()
    count, per_pair, prefix = QUERY_DATASET
    lines = datasets.load_lines(datasets.signed_lines(count, per_pair, prefix))
    datasets.signed_lines(WRITES_COUNT, 10, "hotw")
    if (DB_CACHE / "stemedb.db").exists():
        return
    from stemedb.config import Settings
    from stemedb.records import prepare_record
    from stemedb.store import PendingRecord, Store

    tmp = DB_CACHE.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    settings = Settings(db_dir=tmp)
    store = Store(settings).open()
    now_ms = int(time.time() * 1000)
    pending = []
    for line in lines:
        p = prepare_record(
            "assertion",
            json.loads(line),
            now_s=now_ms // 1000,
            scheme_tiers=settings.scheme_tiers,
            require_signatures=True,
        )
        pending.append(PendingRecord("assertion", p.hash, p.body, p.record, now_ms))
    for start in range(0, len(pending), 1000):
        store.write(pending[start : start + 1000])
    store.close()
    tmp.rename(DB_CACHE)


def query_paths(n: int = 2000, seed: int = 7, lens: str = "authority") -> list[str]:
    datasets = _datasets()
    count, per_pair, prefix = QUERY_DATASET
    lines = datasets.load_lines(datasets.signed_lines(count, per_pair, prefix))
    pairs = sorted({(json.loads(x)["subject"], json.loads(x)["predicate"]) for x in lines})
    rng = random.Random(seed)
    chosen = [pairs[rng.randrange(len(pairs))] for _ in range(n)]
    return [f"/v1/query?subject={s}&predicate={p}&lens={lens}" for s, p in chosen]


def write_lines() -> list[str]:
    datasets = _datasets()
    return list(datasets.load_lines(datasets.signed_lines(WRITES_COUNT, 10, "hotw")))


def copy_db(dest: Path) -> Path:
    db = dest / "db"
    db.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(DB_CACHE):
        shutil.copy2(DB_CACHE / name, db / name)
    return db


# ---- in-process worker (runs under PYTHONPATH=<tree>) -------------------------


def _build_app(db_dir: Path, audit: bool = True) -> tuple[Any, Any]:
    from stemedb.api.app import create_app
    from stemedb.api.endpoints import build_routes
    from stemedb.config import load_settings
    from stemedb.metrics import Metrics
    from stemedb.security import build_middleware
    from stemedb.store import Store

    env = {
        "STEMEDB_DB_DIR": str(db_dir),
        "STEMEDB_RATE_LIMIT_READ": "0",
        "STEMEDB_RATE_LIMIT_WRITE": "0",
        "STEMEDB_QUERY_AUDIT": "true" if audit else "false",
    }
    settings = load_settings(env)
    metrics = Metrics("bench")
    store = Store(settings, on_commit=metrics.observe_commit).open()
    metrics.bind_store(store.stats)
    routes = build_routes(settings, store, metrics)
    app = create_app(
        settings, routes, metrics, extra_middleware=build_middleware(settings, store, metrics)
    )
    return app, store


def _environs(what: str, n: int, offset: int = 0) -> list[dict[str, Any]]:
    from falcon.testing import create_environ

    if what == "health":
        return [create_environ("/v1/health") for _ in range(n)]
    if what == "write":
        lines = write_lines()[offset : offset + n]
        return [
            create_environ(
                "/v1/assert",
                method="POST",
                body=line,
                headers={"Content-Type": "application/json"},
            )
            for line in lines
        ]
    out = []
    for path in query_paths(n):
        p, _, q = path.partition("?")
        out.append(create_environ(p, query_string=q))
    return out


def _call(app: Any, env: dict[str, Any]) -> str:
    status: list[str] = []

    def start_response(s: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(s)
        return lambda data: None

    for _ in app(env, start_response):
        pass
    return status[0]


def _drain(store: Any) -> None:
    store.write_local(lambda conn: None, wait=True)


def worker(what: str, n: int, threads: int, offset: int, profile: str | None) -> dict[str, Any]:
    import stemedb

    with tempfile.TemporaryDirectory(prefix="hotpath-") as tmp:
        audit = os.environ.get("HOTPATH_AUDIT", "true") == "true"
        app, store = _build_app(copy_db(Path(tmp)), audit=audit)
        warm = _environs(what, 200, offset + n)
        for env in warm:
            _call(app, env)
        _drain(store)
        envs = _environs(what, n, offset)
        statuses: dict[str, int] = {}
        profiler = None
        if profile:
            import cProfile

            # thread CPU time: waits (GIL, fsync, sleeps) do not count, only work
            profiler = cProfile.Profile(time.thread_time)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        if threads <= 1:
            for env in envs:
                s = _call(app, env)
                statuses[s] = statuses.get(s, 0) + 1
        else:
            import threading

            per_thread: list[list[str]] = [[] for _ in range(threads)]

            def run(chunk: list[dict[str, Any]], out: list[str]) -> None:
                for env in chunk:
                    out.append(_call(app, env))

            workers = [
                threading.Thread(target=run, args=(envs[i::threads], per_thread[i]))
                for i in range(threads)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            for got in per_thread:
                for s in got:
                    statuses[s] = statuses.get(s, 0) + 1
        _drain(store)
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        store.close()
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    return {
        "tree": str(Path(stemedb.__file__).resolve().parent.parent),
        "cpu_us": cpu / n * 1e6,
        "wall_us": wall / n * 1e6,
        "statuses": statuses,
    }


def run_worker(
    tree: Path, what: str, n: int, threads: int, offset: int = 0, profile: str | None = None
) -> dict[str, Any]:
    cmd = [PYTHON, str(Path(__file__).resolve()), "_worker", what, str(n), str(threads)]
    cmd += [str(offset), profile or ""]
    env = {**os.environ, "PYTHONPATH": str(tree), "STEMEDB_LOG_LEVEL": "warning"}
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(result["tree"]) != tree.resolve():
        raise RuntimeError(f"worker imported {result['tree']}, not {tree}")
    return result


# ---- stages of one query (this tree) -------------------------------------------


def stages(n: int) -> dict[str, float]:
    """Median CPU µs (this thread) per stage of `authority` queries, called piecewise
    the way `QueryService.query` calls them (this tree only)."""
    from stemedb import lenses
    from stemedb.api.media import dumps
    from stemedb.service import queries as qmod
    from stemedb.service.models import QueryIn
    from stemedb.store.candidates import iter_groups

    with tempfile.TemporaryDirectory(prefix="hotpath-") as tmp:
        _, store = _build_app(copy_db(Path(tmp)))
        paths = query_paths(n)
        clock = time.thread_time
        totals: dict[str, list[float]] = {}

        def add(name: str, seconds: float) -> None:
            totals.setdefault(name, []).append(seconds * 1e6)

        from stemedb.service.audit import AuditLog

        audit = AuditLog(store, enabled=True, retention_days=30)
        service = qmod.QueryService(store, audit)
        for path in paths:
            _, _, qs = path.partition("?")
            params = dict(p.split("=", 1) for p in qs.split("&"))
            t0 = clock()
            q = QueryIn.model_validate(params)
            t1 = clock()
            add("validate QueryIn", t1 - t0)
            with store.reader() as conn:
                t2 = clock()
                add("reader BEGIN", t2 - t1)
                sel = service._select(conn, q, lens="authority", predicate=q.predicate)
                t3 = clock()
                add("select (alias)", t3 - t2)
                groups = list(iter_groups(conn, sel.filter))
                t4 = clock()
                add("iter_groups", t4 - t3)
                subject, predicate, rows = groups[0]
                ctx = service._context(conn, sel, rows)
                t5 = clock()
                add("context (trust)", t5 - t4)
                cands = [qmod.to_candidate(r) for r in rows]
                t6 = clock()
                add("to_candidate", t6 - t5)
                result = lenses.resolve("authority", subject, predicate, cands, ctx)
                t7 = clock()
                add("lens", t7 - t6)
                winner_row = getattr(qmod, "_winner_row", None)
                if winner_row is not None:
                    body = service._group_body(conn, result, winner_row(sel, result, rows, cands))
                else:
                    body = service._group_body(conn, result)
                t8 = clock()
                add("group body (winner)", t8 - t7)
            t9 = clock()
            add("reader COMMIT", t9 - t8)
            full = {"lens": "authority", "query_id": "x", "results": [body], "next_cursor": None}
            dumps(full).encode()
            t10 = clock()
            add("json", t10 - t9)
            audit.record("x", None, "query", "authority", q.model_dump(exclude_none=True), full)
            t11 = clock()
            add("audit (request thread)", t11 - t10)
        store.close()
    return {k: round(statistics.median(v), 1) for k, v in totals.items()}


# ---- HTTP ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, tree: Path, data: Path, env: dict[str, str]) -> None:
        self.tree = tree
        self.port = free_port()
        self.log = (data / "server.log").open("wb")
        full = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "STEMEDB_DB_DIR": str(copy_db(data)),
            "STEMEDB_WAL_DIR": str(data / "wal"),
            "STEMEDB_BIND_ADDR": f"127.0.0.1:{self.port}",
            "STEMEDB_RATE_LIMIT_READ": "0",
            "STEMEDB_RATE_LIMIT_WRITE": "0",
            "STEMEDB_LOG_LEVEL": "warning",
            **env,
        }
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "stemedb.cli.main", "serve"],
            env=full,
            cwd=data,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait()

    def _wait(self) -> None:
        import http.client

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server for {self.tree} exited")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/v1/ready")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def wrk(port: int, what: str, seconds: float, input_file: Path | None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if what == "query":
            f.write(QUERY_LUA + DONE_LUA)
        elif what == "write":
            f.write(WRITE_LUA.replace("done = function", "done_counts = function") + DONE_LUA)
        else:
            f.write(DONE_LUA)
        script = f.name
    if what == "write":  # both done functions: counts first, then the JSON line
        text = Path(script).read_text()
        text = text.replace(
            "done = function(summary, latency, requests)\n  io.write(string.format(\n",
            "done = function(summary, latency, requests)\n  done_counts(summary, latency, "
            "requests)\n  io.write(string.format(\n",
        )
        Path(script).write_text(text)
    env = {**os.environ, "HOTPATH_INPUT": str(input_file or ""), "HOTPATH_THREADS": "2"}
    path = "/v1/health" if what == "health" else "/"
    cmd = ["wrk", "-t2", "-c32", f"-d{seconds:g}s", "--timeout", "10s", "-s", script]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}{path}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script)
    result: dict[str, Any] = {}
    for line in out.splitlines():
        if line.startswith("HOTPATH_JSON "):
            result = json.loads(line.split(" ", 1)[1])
        elif line.startswith("HOTPATH_COUNTS "):
            created, other = line.split()[1:]
            result["created"], result["other"] = int(created), int(other)
    seconds_run = result["duration_us"] / 1e6
    ok = result.get("created", result["requests"] - result["non2xx"])
    result["rate"] = ok / seconds_run
    return result


@contextmanager
def servers(
    trees: dict[str, Path], env: dict[str, str], per_tree: dict[str, dict[str, str]] | None = None
) -> Iterator[dict[str, Served]]:
    with tempfile.TemporaryDirectory(prefix="hotpath-http-") as tmp:
        started: dict[str, Served] = {}
        try:
            for name, tree in trees.items():
                data = Path(tmp) / name
                data.mkdir()
                started[name] = Served(tree, data, {**env, **(per_tree or {}).get(name, {})})
            yield started
        finally:
            for srv in started.values():
                srv.stop()


def ab_http(
    trees: dict[str, Path],
    what: str,
    rounds: int,
    seconds: float,
    env: dict[str, str],
    per_tree: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="hotpath-in-") as tmp:
        inputs: list[Path | None] = []
        if what == "query":
            qfile = Path(tmp) / "paths.txt"
            qfile.write_text("\n".join(query_paths()) + "\n")
            inputs = [qfile] * rounds
        elif what == "write":
            lines = write_lines()
            per = len(lines) // rounds
            for r in range(rounds):
                wfile = Path(tmp) / f"writes-{r}.ndjson"
                wfile.write_text("\n".join(lines[r * per : (r + 1) * per]) + "\n")
                inputs.append(wfile)
        else:
            inputs = [None] * rounds
        with servers(trees, env, per_tree) as srvs:
            for srv in srvs.values():  # warm-up
                wrk(srv.port, what if what != "write" else "health", 2, inputs[0])
            for r in range(rounds):
                order = list(srvs) if r % 2 == 0 else list(reversed(srvs))
                for name in order:
                    cpu0 = srvs[name].cpu_s()
                    res = wrk(srvs[name].port, what, seconds, inputs[r])
                    res["server_cpu_s"] = srvs[name].cpu_s() - cpu0
                    res["cpu_us_per_ok"] = (
                        res["server_cpu_s"] / max(1, res["rate"] * res["duration_us"] / 1e6) * 1e6
                    )
                    results[name].append(res)
                    print(
                        f"  round {r} {name}: {res['rate']:.0f}/s p50 {res['p50_us'] / 1000:.1f} ms"
                        f" p99 {res['p99_us'] / 1000:.1f} ms cpu/ok {res['cpu_us_per_ok']:.0f} µs"
                        f" errors {res['errors']} non2xx {res['non2xx']}"
                        + (
                            f" created {res['created']} other {res['other']}"
                            if "created" in res
                            else ""
                        ),
                        flush=True,
                    )
    return summarise(results, ("rate", "p50_us", "p99_us", "cpu_us_per_ok"))


def trace(what: str, seconds: float, env: dict[str, str]) -> dict[str, Any]:
    """One server of this tree with bench/latency_probe loaded, under wrk: the
    percentiles of each latency component (see latency_probe/sitecustomize.py)."""
    inputs: Path | None = None
    with tempfile.TemporaryDirectory(prefix="hotpath-trace-") as tmp:
        if what == "query":
            inputs = Path(tmp) / "paths.txt"
            inputs.write_text("\n".join(query_paths()) + "\n")
        samples = Path(tmp) / "trace.json"
        probe = {
            "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE / 'latency_probe'}",
            "BENCH_TRACE_FILE": str(samples),
            **env,
        }
        with servers({"tree": ROOT}, probe) as srvs:
            srv = srvs["tree"]
            wrk(srv.port, what, 2, inputs)  # warm-up
            time.sleep(1.5)
            before = json.loads(samples.read_text())
            result = wrk(srv.port, what, seconds, inputs)
            time.sleep(1.5)
            after = json.loads(samples.read_text())
        out: dict[str, Any] = {
            "rate": result["rate"],
            "p50_ms": result["p50_us"] / 1000,
            "p99_ms": result["p99_us"] / 1000,
        }
        for part, values in after.items():
            window = sorted(values[len(before.get(part, [])) :])
            if window:
                last = len(window) - 1
                out[part] = {"n": len(window)}
                for q in (50, 90, 99):
                    at = min(last, len(window) * q // 100)
                    out[part][f"p{q}_ms"] = round(window[at] * 1e3, 2)
        return out


def ab_inproc(
    trees: dict[str, Path], what: str, rounds: int, n: int, threads: int
) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for r in range(rounds):
        order = list(trees) if r % 2 == 0 else list(reversed(trees))
        for name in order:
            offset = r * (n + 200) if what == "write" else 0
            res = run_worker(trees[name], what, n, threads, offset)
            results[name].append(res)
            print(
                f"  round {r} {name}: cpu {res['cpu_us']:.0f} µs/req, wall {res['wall_us']:.0f}"
                f" µs/req {res['statuses']}",
                flush=True,
            )
    return summarise(results, ("cpu_us", "wall_us"))


def summarise(results: dict[str, list[dict[str, Any]]], keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = list(results)
    for name in names:
        out[name] = {k: round(statistics.median(r[k] for r in results[name]), 1) for k in keys}
    if len(names) == 2:
        a, b = names
        out[f"{b}/{a}"] = {k: round(out[b][k] / out[a][k], 3) if out[a][k] else None for k in keys}
    return out


def print_profile(path: str, top: int) -> None:
    import pstats

    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="profile_hotpath")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare")
    p = sub.add_parser("profile")
    p.add_argument("--what", choices=["query", "health", "write"], default="query")
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=30)
    s = sub.add_parser("stages")
    s.add_argument("--n", type=int, default=2000)
    for name in ("ab-inproc", "ab-http"):
        ab = sub.add_parser(name)
        ab.add_argument("--base", type=Path, required=True)
        ab.add_argument("--new", type=Path, default=ROOT)
        ab.add_argument("--what", choices=["query", "health", "write"], default="query")
        ab.add_argument("--rounds", type=int, default=5 if name == "ab-inproc" else 3)
        ab.add_argument("--n", type=int, default=3000)
        ab.add_argument("--threads", type=int, default=1)
        ab.add_argument("--seconds", type=float, default=8.0)
        ab.add_argument("--env", action="append", default=[], help="NAME=VALUE for servers")
        ab.add_argument("--env-base", action="append", default=[], help="NAME=VALUE, base only")
        ab.add_argument("--env-new", action="append", default=[], help="NAME=VALUE, new only")
    t = sub.add_parser("trace")
    t.add_argument("--what", choices=["query", "health"], default="query")
    t.add_argument("--seconds", type=float, default=8.0)
    t.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    w = sub.add_parser("_worker")
    w.add_argument("what")
    w.add_argument("n", type=int)
    w.add_argument("threads", type=int)
    w.add_argument("offset", type=int)
    w.add_argument("profile", nargs="?", default="")
    args = parser.parse_args(argv)

    if args.cmd == "_worker":
        result = worker(args.what, args.n, args.threads, args.offset, args.profile or None)
        print(json.dumps(result))
        return 0
    prepare()
    if args.cmd == "prepare":
        return 0
    if args.cmd == "profile":
        with tempfile.NamedTemporaryFile(suffix=".prof", delete=False) as f:
            prof = f.name
        res = run_worker(ROOT, args.what, args.n, args.threads, 0, prof)
        print(json.dumps(res))
        print_profile(prof, args.top)
        return 0
    if args.cmd == "stages":
        print(json.dumps(stages(args.n), indent=2))
        return 0
    if args.cmd == "trace":
        env = dict(e.split("=", 1) for e in args.env)
        print(json.dumps(trace(args.what, args.seconds, env), indent=2))
        return 0
    trees = {"base": args.base, "new": args.new}
    if args.cmd == "ab-inproc":
        out = ab_inproc(trees, args.what, args.rounds, args.n, args.threads)
    else:
        env = dict(e.split("=", 1) for e in args.env)
        per_tree = {
            "base": dict(e.split("=", 1) for e in args.env_base),
            "new": dict(e.split("=", 1) for e in args.env_new),
        }
        out = ab_http(trees, args.what, args.rounds, args.seconds, env, per_tree)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
