"""A multi-process HTTP load generator (keep-alive, pre-built bodies).

Each worker process runs a few threads, each with its own persistent
`http.client` connection, and sends requests from a pre-built list until a
deadline. Workers report latencies and status counts; the parent also reports
the workers' own CPU time so a reader can see the client is not the bottleneck.
"""

from __future__ import annotations

import http.client
import multiprocessing
import resource
import threading
import time
from dataclasses import dataclass, field
from typing import Any

Request = tuple[str, str, bytes | None, dict[str, str]]  # method, path, body, headers


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)


def _thread(
    host: str,
    port: int,
    requests: list[Request],
    offset: int,
    deadline: float,
    once: bool,
    out: list[Any],
) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    i = offset
    stop = offset + len(requests) if once else None
    while time.monotonic() < deadline and (stop is None or i < stop):
        method, path, body, headers = requests[i % len(requests)]
        i += 1
        started = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
            continue
        latencies.append(time.perf_counter() - started)
        statuses[response.status] = statuses.get(response.status, 0) + 1
    conn.close()
    out.append((latencies, statuses, errors))


def _worker(
    host: str,
    port: int,
    requests: list[Request],
    threads: int,
    deadline_in: float,
    unique: bool,
    worker_index: int,
    queue: Any,
) -> None:
    deadline = time.monotonic() + deadline_in
    out: list[Any] = []
    # With `unique` each thread gets its own slice: every request is sent once at most.
    slices = [requests[t::threads] for t in range(threads)] if unique else [requests] * threads
    workers = [
        threading.Thread(
            target=_thread,
            args=(
                host,
                port,
                slices[t],
                0 if unique else (worker_index * threads + t) * 7,
                deadline,
                unique,
                out,
            ),
        )
        for t in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.put((out, usage.ru_utime + usage.ru_stime))


def run_load(
    host: str,
    port: int,
    requests: list[Request],
    *,
    clients: int = 32,
    processes: int = 4,
    seconds: float = 10.0,
    unique: bool = False,
) -> LoadResult:
    """Send `requests` from `clients` keep-alive connections for `seconds`.

    With `unique`, requests are split among clients and each sent once (writes
    of distinct records); otherwise clients cycle through the list (reads).
    """
    per_process = max(1, clients // processes)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    chunks = (
        [requests[p::processes] for p in range(processes)] if unique else [requests] * processes
    )
    procs = [
        ctx.Process(
            target=_worker, args=(host, port, chunks[p], per_process, seconds, unique, p, queue)
        )
        for p in range(processes)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    result = LoadResult()
    for _ in procs:
        out, cpu = queue.get()
        result.client_cpu_s += cpu
        for latencies, statuses, errors in out:
            result.latencies.extend(latencies)
            result.errors += errors
            for status, n in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + n
    for p in procs:
        p.join()
    result.elapsed = time.perf_counter() - started
    return result
