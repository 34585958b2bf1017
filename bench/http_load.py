"""HTTP benchmarks against a real server process (waitress), side by side in one run."""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import ingest
from bench.loadgen import Request, run_load
from bench.stats import summary_ms

JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.data = data
        full_env = {
            **os.environ,
            "STEMEDB_DB_DIR": str(data / "db"),
            "STEMEDB_WAL_DIR": str(data / "wal"),
            "STEMEDB_BIND_ADDR": f"127.0.0.1:{self.port}",
            "STEMEDB_RATE_LIMIT_READ": "0",
            "STEMEDB_RATE_LIMIT_WRITE": "0",
            "STEMEDB_SYNC": "full",
            "STEMEDB_QUERY_AUDIT": "true",
            "STEMEDB_LOG_LEVEL": "warning",
            **env,
        }
        self.log = (data / "server.log").open("wb")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stemedb.cli.main", "serve"],
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.startup_s = self._wait_ready(started)

    def _wait_ready(self, started: float) -> float:
        while time.perf_counter() - started < 120:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: see {self.data / 'server.log'}")
            try:
                status, _ = self.request("GET", "/v1/ready")
                if status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("server did not become ready")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def metric(self, name: str) -> float:
        _, text = self.request("GET", "/metrics")
        for line in text.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@contextmanager
def server(env: dict[str, str] | None = None, data: Path | None = None) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="stemedb-bench-") as tmp:
        srv = Server(data or Path(tmp), env or {})
        try:
            yield srv
        finally:
            srv.stop()


def batch_import(srv: Server, lines: list[str], chunk: int = 1000) -> float:
    started = time.perf_counter()
    for start in range(0, len(lines), chunk):
        body = ("\n".join(lines[start : start + chunk]) + "\n").encode()
        status, answer = srv.request("POST", "/v1/assert/batch", body, NDJSON)
        if status != 200 or json.loads(answer)["rejected"]:
            raise RuntimeError(f"batch import failed: {status} {answer[:300]!r}")
    return len(lines) / (time.perf_counter() - started)


def single_writes(
    lines: list[str], seconds: float, max_batch: int, threads: int = 32
) -> dict[str, Any]:
    requests: list[Request] = [("POST", "/v1/assert", line.encode(), JSON) for line in lines]
    env = {"STEMEDB_GROUP_COMMIT_MAX_BATCH": str(max_batch), "STEMEDB_THREADS": str(threads)}
    with server(env) as srv:
        result = run_load("127.0.0.1", srv.port, requests, clients=32, seconds=seconds, unique=True)
        batches = srv.metric("stemedb_journal_batch_size_count")
        records = srv.metric("stemedb_journal_batch_size_sum")
    return {
        "acked_writes_per_s": round(result.ok / result.elapsed),
        **summary_ms(result.latencies),
        "errors": result.errors + sum(n for s, n in result.statuses.items() if s >= 300),
        "mean_group_commit_batch": round(records / batches, 1) if batches else None,
        "client_cpu_s": round(result.client_cpu_s, 1),
        "elapsed_s": round(result.elapsed, 1),
    }


def lens_queries(
    srv: Server, pairs: list[tuple[str, str]], lens: str, seconds: float
) -> dict[str, Any]:
    rng = random.Random(7)
    chosen = [pairs[rng.randrange(len(pairs))] for _ in range(2000)]
    requests: list[Request] = [
        ("GET", f"/v1/query?subject={s}&predicate={p}&lens={lens}", None, {}) for s, p in chosen
    ]
    result = run_load("127.0.0.1", srv.port, requests, clients=32, seconds=seconds)
    return {
        "queries_per_s": round(result.ok / result.elapsed),
        **summary_ms(result.latencies),
        "errors": result.errors + sum(n for s, n in result.statuses.items() if s >= 300),
        "client_cpu_s": round(result.client_cpu_s, 1),
    }


def run(lines: list[str], *, quick: bool) -> dict[str, Any]:
    seconds = 5.0 if quick else 15.0
    out: dict[str, Any] = {}
    out["floor_rps"] = round(ingest.floor(lines))
    with server() as srv:
        out["startup_s_empty"] = round(srv.startup_s, 3)
        out["http_batch_import_rps"] = round(batch_import(srv, lines))
        out["batch_vs_floor"] = round(out["http_batch_import_rps"] / out["floor_rps"], 3)
        pairs = sorted(
            {(json.loads(line)["subject"], json.loads(line)["predicate"]) for line in lines}
        )
        for lens in ("authority", "recency", "consensus", "skeptic"):
            out[f"query_{lens}"] = lens_queries(srv, pairs, lens, seconds)
        out["server_rss_mb_after_queries"] = round(srv.rss_mb(), 1)
    # Fresh signed records for the write tests (never seen by the server above).
    from bench import datasets

    fresh = datasets.load_lines(datasets.signed_lines(len(lines), prefix="writes"))
    out["single_writes_group_commit"] = single_writes(fresh, seconds, 512)
    out["single_writes_one_per_txn"] = single_writes(fresh, seconds, 1)
    for threads in (8, 64):
        out[f"single_writes_group_commit_{threads}_threads"] = single_writes(
            fresh, seconds, 512, threads
        )
    a = out["single_writes_group_commit"]["acked_writes_per_s"]
    b = out["single_writes_one_per_txn"]["acked_writes_per_s"]
    out["group_commit_gain"] = round(a / b, 2) if b else None
    return out
