"""`python -m bench.soak --minutes 10`: a long mixed load; is the server flat over time?

Starts a real `stemedb serve` (its own temp directory, port 0) unless `--url`
and `--pid` point at one, seeds it, then runs `--threads` clients for
`--minutes`: 80 % reads (lens query, list query, one assertion by hash,
skeptic) over the seeded subjects and 20 % signed writes (single asserts and
small batches) to fresh subjects, each client on its own keep-alive
connection. The read set keeps its size while the file grows, so a latency
drift is the server's, not bigger answers'.

Every `--sample-seconds` it samples the server process from /proc: resident
memory (VmRSS), open file descriptors (/proc/PID/fd), threads. Per minute it
reports requests, errors, and p50/p99 latency of reads and writes. The verdict
compares the first sample after the warm-up minute with the last one, and the
first minute's latency with the last's: the goal is flat memory, flat fds,
zero errors.

Output: a JSON report on stdout (and to `--json PATH`), a Markdown summary on
stderr. Exit code 0 when there were no errors, 1 otherwise. The server's temp
directory (database and log) is removed after a clean run; `--keep` keeps it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import markdown_table, percentile
from stemedb.crypto import generate_signing_key
from stemedb.signing import make_assertion

JSON_CT = {"Content-Type": "application/json"}
SUBJECTS = 200
SEED_RECORDS = 2000
LENSES = ("recency", "consensus", "authority", "best")


# ---- the server under test ---------------------------------------------------------------


class Server:
    """A `stemedb serve` subprocess with its data in a temp directory."""

    def __init__(self, workdir: Path, extra_env: dict[str, str]) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")},
            "PYTHONUNBUFFERED": "1",
            "STEMEDB_BIND_ADDR": f"127.0.0.1:{free_port()}",
            "STEMEDB_DB_DIR": str(workdir / "db"),
            "STEMEDB_WAL_DIR": str(workdir / "wal"),
            "STEMEDB_RATE_LIMIT_READ": "0",
            "STEMEDB_RATE_LIMIT_WRITE": "0",
            "STEMEDB_LOG_LEVEL": "warning",
            **extra_env,
        }
        self.url = f"http://{env['STEMEDB_BIND_ADDR']}"
        self.log_path = workdir / "server.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stemedb.cli.main", "serve"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if request(self.url, "GET", "/v1/health")[0] == 200:
                    return self.url
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server not ready after 60 s")

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        finally:
            self._log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(url: str, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, data, JSON_CT if data else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# ---- /proc sampling ------------------------------------------------------------------------


def proc_sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()

    def kb(name: str) -> float:
        found = re.search(rf"^{name}:\s+(\d+) kB", status, re.M)
        return int(found.group(1)) / 1024 if found else float("nan")

    threads = re.search(r"^Threads:\s+(\d+)", status, re.M)
    return {
        "rss_mb": round(kb("VmRSS"), 1),
        "hwm_mb": round(kb("VmHWM"), 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(threads.group(1)) if threads else -1,
    }


# ---- the load ------------------------------------------------------------------------------


@dataclass
class Stats:
    started: float
    ends: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    # minute -> kind ("read"/"write") -> latencies (s)
    latencies: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    def record(self, kind: str, began: float, seconds: float, ok: bool, detail: str = "") -> None:
        """One request, counted in the minute it began (monotonic `began`)."""
        if began >= self.ends:  # started after the clock ran out: not part of the run
            return
        minute = int((began - self.started) // 60)
        with self.lock:
            per_kind = self.latencies.setdefault(minute, {"read": [], "write": []})
            per_kind[kind].append(seconds)
            if not ok:
                self.errors[minute] = self.errors.get(minute, 0) + 1
                if len(self.error_samples) < 20:
                    self.error_samples.append(detail)


class Client(threading.Thread):
    def __init__(
        self,
        url: str,
        stats: Stats,
        hashes: list[str],
        seed: int,
        stop: threading.Event,
        read_share: float,
    ) -> None:
        super().__init__(daemon=True)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.stats = stats
        self.hashes = hashes
        self.rng = random.Random(seed)
        self.key = generate_signing_key()
        self.seed_no = seed
        self.count = 0
        self._stop_event = stop
        self.read_share = read_share

    def run(self) -> None:
        while not self._stop_event.is_set():
            if self.rng.random() < self.read_share:
                self._one("read", *self._read())
            else:
                self._one("write", *self._write())
        self.conn.close()

    def _read(self) -> tuple[str, str, Any, tuple[int, ...]]:
        subject = f"soak/s{self.rng.randrange(SUBJECTS)}"
        roll = self.rng.random()
        if roll < 0.4:
            lens = self.rng.choice(LENSES)
            return "GET", f"/v1/query?subject={subject}&lens={lens}", None, (200,)
        if roll < 0.6:
            return "POST", "/v1/query", {"subject": subject, "limit": 50}, (200,)
        if roll < 0.85:
            return "GET", f"/v1/assertions/{self.rng.choice(self.hashes)}", None, (200,)
        return "GET", f"/v1/skeptic?subject={subject}&predicate=p0", None, (200,)

    def _record(self) -> dict[str, Any]:
        """New claims go to subjects of their own (50 each), so the read set stays the
        same size and a latency drift means the server, not a growing answer."""
        self.count += 1
        subject = f"soak/w{self.seed_no}/{self.count // 50}"
        value = f"c{self.seed_no}-{self.count}"
        return make_assertion(self.key, subject, f"p{self.count % 5}", value, self.rng.random())

    def _write(self) -> tuple[str, str, Any, tuple[int, ...]]:
        if self.rng.random() < 0.7:
            return "POST", "/v1/assert", self._record(), (201,)
        return "POST", "/v1/assert/batch", [self._record() for _ in range(5)], (200,)

    def _one(self, kind: str, method: str, path: str, body: Any, ok: tuple[int, ...]) -> None:
        data = json.dumps(body).encode() if body is not None else None
        began = time.monotonic()
        started = time.perf_counter()
        try:
            self.conn.request(method, path, data, JSON_CT if data else {})
            resp = self.conn.getresponse()
            raw = resp.read()
            good = resp.status in ok
            detail = "" if good else f"{method} {path}: {resp.status} {raw[:200]!r}"
        except (OSError, http.client.HTTPException) as exc:
            good, detail = False, f"{method} {path}: {type(exc).__name__}: {exc}"
            self.conn.close()
        self.stats.record(kind, began, time.perf_counter() - started, good, detail)


def seed(url: str) -> list[str]:
    """SEED_RECORDS signed assertions over SUBJECTS subjects; returns their hashes."""
    key = generate_signing_key()
    rng = random.Random(1)
    hashes: list[str] = []
    for start in range(0, SEED_RECORDS, 500):
        batch = [
            make_assertion(
                key, f"soak/s{i % SUBJECTS}", f"p{i % 5}", f"seed-{i}", round(rng.random(), 3)
            )
            for i in range(start, start + 500)
        ]
        status, raw = request(url, "POST", "/v1/assert/batch", batch)
        if status != 200:
            raise RuntimeError(f"seeding failed: {status} {raw[:300]!r}")
        hashes += [r["hash"] for r in json.loads(raw)["results"]]
    return hashes


def _ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 2) if values else float("nan")


def run_soak(
    minutes: float,
    *,
    threads: int = 8,
    read_share: float = 0.8,
    sample_seconds: float = 5.0,
    url: str | None = None,
    pid: int | None = None,
    server_env: dict[str, str] | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="stemedb-soak-"))
    server = None if url else Server(workdir, server_env or {})
    if server is not None:
        url, pid = server.url, server.proc.pid
    assert url is not None
    hashes = seed(url)
    now = time.monotonic()
    stats = Stats(started=now, ends=now + minutes * 60)
    stop = threading.Event()
    clients = [Client(url, stats, hashes, n, stop, read_share) for n in range(threads)]
    samples: list[dict[str, float]] = []
    for client in clients:
        client.start()
    try:
        end = stats.ends
        while time.monotonic() < end:
            if pid is not None:
                sample = {"t_s": round(time.monotonic() - stats.started, 1), **proc_sample(pid)}
                samples.append(sample)
                print(json.dumps(sample), file=sys.stderr, flush=True)
            time.sleep(min(sample_seconds, max(0.0, end - time.monotonic())))
    finally:
        stop.set()
        for client in clients:
            client.join(30)
        exit_code = server.stop() if server is not None else None
    if pid is not None and server is None:
        samples.append({"t_s": round(time.monotonic() - stats.started, 1), **proc_sample(pid)})
    report = _report(minutes, threads, read_share, stats, samples, exit_code, workdir)
    if server is not None and not report["errors"] and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
        report["workdir"] = None
    return report


def _report(
    minutes: float,
    threads: int,
    read_share: float,
    stats: Stats,
    samples: list[dict[str, float]],
    exit_code: int | None,
    workdir: Path,
) -> dict[str, Any]:
    per_minute = []
    for minute in sorted(stats.latencies):
        reads, writes = stats.latencies[minute]["read"], stats.latencies[minute]["write"]
        per_minute.append(
            {
                "minute": minute + 1,
                "requests": len(reads) + len(writes),
                "errors": stats.errors.get(minute, 0),
                "read_p50_ms": _ms(reads, 50),
                "read_p99_ms": _ms(reads, 99),
                "write_p50_ms": _ms(writes, 50),
                "write_p99_ms": _ms(writes, 99),
            }
        )
    warm = [s for s in samples if s["t_s"] >= 60] or samples
    first, last = (warm[0], samples[-1]) if samples else ({}, {})
    total = sum(m["requests"] for m in per_minute)
    return {
        "minutes": minutes,
        "threads": threads,
        "read_share": read_share,
        "requests": total,
        "requests_per_s": round(total / (minutes * 60), 1) if minutes else 0,
        "errors": sum(stats.errors.values()),
        "error_samples": stats.error_samples,
        "rss_mb_after_warmup": first.get("rss_mb"),
        "rss_mb_end": last.get("rss_mb"),
        "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 1) if samples else None,
        "fds_after_warmup": first.get("fds"),
        "fds_end": last.get("fds"),
        "threads_end": last.get("threads"),
        "per_minute": per_minute,
        "samples": samples,
        "server_exit_code": exit_code,
        "workdir": str(workdir),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"{report['minutes']} min, {report['threads']} clients, "
        f"{int(report['read_share'] * 100)} % reads: {report['requests']} requests "
        f"({report['requests_per_s']}/s), {report['errors']} errors; "
        f"RSS {report['rss_mb_after_warmup']} -> {report['rss_mb_end']} MB "
        f"(growth {report['rss_growth_mb']} MB after warm-up), "
        f"fds {report['fds_after_warmup']} -> {report['fds_end']}",
        "",
        markdown_table(
            report["per_minute"],
            [
                "minute",
                "requests",
                "errors",
                "read_p50_ms",
                "read_p99_ms",
                "write_p50_ms",
                "write_p99_ms",
            ],
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--read-share", type=float, default=0.8)
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--pid", type=int, help="its process id, for /proc sampling")
    parser.add_argument("--json", type=Path, help="also write the JSON report here")
    parser.add_argument("--keep", action="store_true", help="keep the server's temp directory")
    args = parser.parse_args(argv)
    report = run_soak(
        args.minutes,
        threads=args.threads,
        read_share=args.read_share,
        sample_seconds=args.sample_seconds,
        url=args.url,
        pid=args.pid,
        keep=args.keep,
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    print(markdown(report), file=sys.stderr)
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
