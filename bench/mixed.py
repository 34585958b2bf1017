"""Mixed load: 80 % reads / 20 % writes from 32 keep-alive clients, on a loaded database.

wrk cannot split latency by request type, so this uses the Python load
generator's processes and threads: each client draws read or write with a
fixed-seed coin (p = 0.2 for a write). Reads are lens queries on random
10-candidate pairs (authority, recency, consensus) and `GET /v1/assertions/{hash}`
in equal parts; writes are single pre-signed assertions, each sent once. The
client's own CPU is reported: on 2 cores it competes with the server, so
absolute rates here are lower than with wrk; the target is zero errors and
the p50/p99 of both classes.
"""

from __future__ import annotations

import http.client
import multiprocessing
import random
import resource
import shutil
import statistics
import threading
import time
from typing import Any

from bench import dbcache
from bench.server import Sampler, Server
from bench.stats import percentile

JSON = {"Content-Type": "application/json"}
WRITE_SHARE = 0.2


def _client(
    port: int,
    reads: list[str],
    writes: list[bytes],
    seed: int,
    deadline: float,
    out: list[Any],
) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat: dict[str, list[float]] = {"read": [], "write": []}
    statuses: dict[str, dict[int, int]] = {"read": {}, "write": {}}
    errors = 0
    w = 0
    while time.monotonic() < deadline:
        if rng.random() < WRITE_SHARE and w < len(writes):
            kind, method, path, body, headers = "write", "POST", "/v1/assert", writes[w], JSON
            w += 1
        else:
            kind, method, path, body, headers = "read", "GET", rng.choice(reads), None, {}
        started = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        lat[kind].append(time.perf_counter() - started)
        statuses[kind][response.status] = statuses[kind].get(response.status, 0) + 1
    conn.close()
    out.append((lat, statuses, errors, w >= len(writes)))


def _process(
    port: int,
    reads: list[str],
    writes: list[bytes],
    threads: int,
    index: int,
    seconds: float,
    queue: Any,
) -> None:
    deadline = time.monotonic() + seconds
    out: list[Any] = []
    workers = [
        threading.Thread(
            target=_client,
            args=(port, reads, writes[t::threads], index * 1000 + t, deadline, out),
        )
        for t in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.put((out, usage.ru_utime + usage.ru_stime))


def run(
    n: int,
    write_lines: list[str],
    *,
    seconds: float,
    clients: int = 32,
    processes: int = 4,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    data = dbcache.copy_to(n, dbcache.fresh_dir())
    try:
        reads: list[str] = []
        for i, lens in enumerate(("authority", "recency", "consensus")):
            reads.extend(dbcache.lens_paths(n, lens, k=5000, seed=100 + i))
        reads.extend(f"/v1/assertions/{h}" for h in dbcache.sample_hashes(n, 5000))
        writes = [line.encode() for line in write_lines]
        srv = Server(data, env)
        try:
            ctx = multiprocessing.get_context("fork")
            queue = ctx.Queue()
            per = clients // processes
            procs = [
                ctx.Process(
                    target=_process,
                    args=(srv.port, reads, writes[p::processes], per, p, seconds, queue),
                )
                for p in range(processes)
            ]
            created0 = srv.assertion_count()
            with Sampler(srv.pid) as sampler:
                started = time.perf_counter()
                for p in procs:
                    p.start()
                results = [queue.get() for _ in procs]
                for p in procs:
                    p.join()
                elapsed = time.perf_counter() - started
            created = srv.assertion_count() - created0
        finally:
            srv.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    lat: dict[str, list[float]] = {"read": [], "write": []}
    statuses: dict[str, dict[int, int]] = {"read": {}, "write": {}}
    errors = 0
    exhausted = False
    client_cpu = 0.0
    for out, cpu in results:
        client_cpu += cpu
        for one_lat, one_status, one_errors, one_exhausted in out:
            errors += one_errors
            exhausted = exhausted or one_exhausted
            for kind in ("read", "write"):
                lat[kind].extend(one_lat[kind])
                for status, count in one_status[kind].items():
                    statuses[kind][status] = statuses[kind].get(status, 0) + count
    summary: dict[str, Any] = {
        "seconds": round(elapsed, 1),
        "clients": clients,
        "assertions_before": n + dbcache.WIDE_COUNT,
        "transport_errors": errors,
        "writes_exhausted": exhausted,
        "created": created,
        "client_cpu_cores": round(client_cpu / elapsed, 2),
        **sampler.summary(),
    }
    total = sum(len(v) for v in lat.values())
    for kind in ("read", "write"):
        ms = [v * 1000 for v in lat[kind]]
        bad = sum(c for s, c in statuses[kind].items() if s >= 400)
        summary[kind] = {
            "requests": len(ms),
            "per_s": round(len(ms) / elapsed, 1),
            "share": round(len(ms) / total, 3) if total else None,
            "p50_ms": round(statistics.median(ms), 2) if ms else None,
            "p99_ms": round(percentile(ms, 99), 2) if ms else None,
            "max_ms": round(max(ms), 1) if ms else None,
            "http_errors": bad,
            "statuses": {str(k): v for k, v in sorted(statuses[kind].items())},
        }
    summary["errors"] = errors + summary["read"]["http_errors"] + summary["write"]["http_errors"]
    return summary
