"""Single-assertion writes over HTTP: 32 keep-alive wrk connections, pre-signed bodies.

Configurations, each on a fresh empty server, interleaved round by round:

* `gc_32`  — the defaults: group commit on (max batch 512), STEMEDB_THREADS=32;
* `nogc_32` — STEMEDB_GROUP_COMMIT_MAX_BATCH=1: one transaction (one fsync) per record;
* `gc_8`, `gc_64` — the thread sweep that justifies the default of 32;
* `gc_32_unpinned` — the defaults but `STEMEDB_CPU_AFFINITY=off` (the default
  `auto` pins the server to one core): what the second core is worth to one
  CPython process;
* `gc_32_unadmitted` — the defaults but `STEMEDB_ACTIVE_REQUESTS=0` (no FIFO
  admission): what admission costs or gains writes.

"Acked durable writes/s" = 2xx answers wrk received / duration; every body
is a distinct record, and the server's own counter of created assertions
must be at least that (a repeat would be answered `exists`). The mean
group-commit batch is the delta of /metrics' `stemedb_journal_batch_size`
sum / count over the run. One extra run of the Python load generator on the
default configuration shows what the client itself costs.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench import wrk
from bench.loadgen import Request, run_load
from bench.server import Sampler, Server, server
from bench.stats import summary_ms

CONFIGS: dict[str, dict[str, str]] = {
    "gc_32": {"STEMEDB_THREADS": "32"},
    "nogc_32": {"STEMEDB_THREADS": "32", "STEMEDB_GROUP_COMMIT_MAX_BATCH": "1"},
    "gc_8": {"STEMEDB_THREADS": "8"},
    "gc_64": {"STEMEDB_THREADS": "64"},
    "gc_32_unpinned": {"STEMEDB_THREADS": "32", "STEMEDB_CPU_AFFINITY": "off"},
    "gc_32_unadmitted": {"STEMEDB_THREADS": "32", "STEMEDB_ACTIVE_REQUESTS": "0"},
}
JSON = {"Content-Type": "application/json"}


def _batch_counters(srv: Server) -> tuple[float, float]:
    m = srv.metrics()
    return m.get("stemedb_journal_batch_size_sum", 0.0), m.get(
        "stemedb_journal_batch_size_count", 0.0
    )


def wrk_writes(
    srv: Server,
    bodies: Path,
    *,
    seconds: float,
    connections: int = 32,
    offset: int = 0,
    count: int = 0,
) -> dict[str, Any]:
    """One wrk run of single writes on `srv`; adds created count and mean batch."""
    created0 = srv.assertion_count()
    sum0, n0 = _batch_counters(srv)
    result = wrk.run(
        srv,
        "bodies",
        bodies,
        seconds=seconds,
        connections=connections,
        offset=offset,
        count=count,
    )
    created = srv.assertion_count() - created0
    sum1, n1 = _batch_counters(srv)
    ok = result["requests"] - result["status_errors"]
    result["created"] = created
    result["acked_writes_per_s"] = round(ok / result["duration_s"], 1)
    result["mean_group_commit_batch"] = round((sum1 - sum0) / (n1 - n0), 1) if n1 > n0 else None
    # wrk stops with up to `connections` requests in flight; those may still be
    # created after it stops, so created >= ok. Fewer means some were repeats.
    result["repeats"] = max(0, ok - created)
    return result


def python_writes(srv: Server, lines: list[str], seconds: float) -> dict[str, Any]:
    requests: list[Request] = [("POST", "/v1/assert", line.encode(), JSON) for line in lines]
    sum0, n0 = _batch_counters(srv)
    with Sampler(srv.pid) as sampler:
        result = run_load("127.0.0.1", srv.port, requests, clients=32, seconds=seconds, unique=True)
    sum1, n1 = _batch_counters(srv)
    return {
        "acked_writes_per_s": round(result.ok / result.elapsed, 1),
        **summary_ms(result.latencies),
        "errors": result.errors + sum(n for s, n in result.statuses.items() if s >= 300),
        "mean_group_commit_batch": round((sum1 - sum0) / (n1 - n0), 1) if n1 > n0 else None,
        "client_cpu_s": round(result.client_cpu_s, 1),
        "client_cpu_cores": round(result.client_cpu_s / result.elapsed, 2),
        **sampler.summary(),
    }


def _median(rows: list[dict[str, Any]], key: str) -> Any:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def run(bodies: Path, *, seconds: float, rounds: int, python_lines: list[str]) -> dict[str, Any]:
    per_config: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    for r in range(rounds):
        for name, env in CONFIGS.items():
            with server(env) as srv:
                result = wrk_writes(srv, bodies, seconds=seconds, count=int(5000 * seconds))
            per_config[name].append(result)
            print(
                f"  writes round {r + 1}/{rounds} {name}: {result['acked_writes_per_s']}/s"
                f" p50 {result['p50_ms']} p99 {result['p99_ms']} ms"
                f" batch {result['mean_group_commit_batch']} errors {result['errors']}"
                f" repeats {result['repeats']}",
                flush=True,
            )
    out: dict[str, Any] = {"seconds": seconds, "rounds": rounds, "connections": 32}
    keys = (
        "acked_writes_per_s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "mean_group_commit_batch",
        "server_cpu_cores",
        "server_cpu_ms_per_req",
        "server_sys_share",
        "client_cpu_cores",
        "others_cpu_cores",
        "server_rss_max_mb",
    )
    for name, rows in per_config.items():
        out[name] = {k: _median(rows, k) for k in keys}
        out[name]["errors"] = sum(r["errors"] for r in rows)
        out[name]["repeats"] = sum(r["repeats"] for r in rows)
        out[name]["runs"] = [
            {k: r.get(k) for k in ("acked_writes_per_s", "p50_ms", "p99_ms")} for r in rows
        ]
    gains = [
        a["acked_writes_per_s"] / b["acked_writes_per_s"]
        for a, b in zip(per_config["gc_32"], per_config["nogc_32"], strict=True)
        if b["acked_writes_per_s"]
    ]
    out["group_commit_gain"] = round(statistics.median(gains), 2) if gains else None
    with server(CONFIGS["gc_32"]) as srv:
        out["python_client_gc_32"] = python_writes(srv, python_lines, seconds)
    print("  writes python client: " + json.dumps(out["python_client_gc_32"]), flush=True)
    return out
