"""A real `stemedb serve` process for the HTTP benchmarks, plus /proc sampling.

The server runs as a subprocess with its data in a directory the caller
chooses (a temp dir, or a copy of a cached database), on a free loopback port,
with `STEMEDB_SYNC=full` and the query audit on unless overridden. Rate limits
are off so the bench measures the server, not its limiter.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")

BASE_ENV = {
    "STEMEDB_RATE_LIMIT_READ": "0",
    "STEMEDB_RATE_LIMIT_WRITE": "0",
    "STEMEDB_SYNC": "full",
    "STEMEDB_QUERY_AUDIT": "true",
    "STEMEDB_LOG_LEVEL": "warning",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a live process (all its threads), in seconds."""
    user, system = proc_user_sys_s(pid)
    return user + system


def proc_user_sys_s(pid: int) -> tuple[float, float]:
    """(utime, stime) of a live process, in seconds: user space vs kernel."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine spent busy (every core), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class Sampler:
    """Samples a process's RSS every `interval` s in a thread; CPU from start to stop."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.rss: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.cpu_s = 0.0
        self.sys_s = 0.0
        self.machine_busy_s = 0.0
        self.elapsed = 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.rss.append(proc_rss_mb(self.pid))
            except OSError:
                return

    def __enter__(self) -> Sampler:
        self._cpu0 = proc_cpu_s(self.pid)
        self._sys0 = proc_user_sys_s(self.pid)[1]
        self._busy0 = machine_busy_s()
        self._t0 = time.perf_counter()
        self._load0 = loadavg()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.elapsed = time.perf_counter() - self._t0
        self.machine_busy_s = machine_busy_s() - self._busy0
        try:
            self.cpu_s = proc_cpu_s(self.pid) - self._cpu0
            self.sys_s = proc_user_sys_s(self.pid)[1] - self._sys0
        except OSError:
            self.cpu_s = self.sys_s = float("nan")

    def summary(self) -> dict[str, Any]:
        if not self.elapsed:
            return {}
        return {
            "server_cpu_s": round(self.cpu_s, 2),
            "server_cpu_cores": round(self.cpu_s / self.elapsed, 2),
            # kernel share of the server's CPU: loopback TCP, futex hand-offs, fsync
            "server_sys_share": round(self.sys_s / self.cpu_s, 2) if self.cpu_s else None,
            # everything busy on the machine, this server and the load generator included
            "machine_busy_cores": round(self.machine_busy_s / self.elapsed, 2),
            "server_rss_max_mb": round(max(self.rss), 1) if self.rss else None,
            "loadavg_1m_before": self._load0,
        }


class Server:
    """`python -m stemedb.cli.main serve` on `data`; `startup_s` is spawn → /v1/ready 200."""

    def __init__(
        self, data: Path, env: dict[str, str] | None = None, cpus: str | None = None
    ) -> None:
        self.port = free_port()
        self.data = data
        data.mkdir(parents=True, exist_ok=True)
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")},
            **BASE_ENV,
            "STEMEDB_DB_DIR": str(data / "db"),
            "STEMEDB_WAL_DIR": str(data / "wal"),
            "STEMEDB_BACKUP_DIR": str(data / "backups"),
            "STEMEDB_BIND_ADDR": f"127.0.0.1:{self.port}",
            **(env or {}),
        }
        self.env = full_env
        self.log_path = data / "server.log"
        self.log = self.log_path.open("ab")
        started = time.perf_counter()
        # `cpus` pins the server to those CPUs (taskset -c), e.g. "1".
        pin = ["taskset", "-c", cpus] if cpus else []
        self.proc = subprocess.Popen(
            [*pin, sys.executable, "-m", "stemedb.cli.main", "serve"],
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.startup_s = self._wait_ready(started)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, started: float) -> float:
        while time.perf_counter() - started < 300:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"server exited ({self.log_path}):\n{tail}")
            try:
                status, _ = self.request("GET", "/v1/ready", timeout=5)
                if status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError("server did not become ready in 300 s")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 600,
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def rss_mb(self) -> float:
        return proc_rss_mb(self.pid)

    def cpu_s(self) -> float:
        return proc_cpu_s(self.pid)

    def metrics(self) -> dict[str, float]:
        """Unlabelled and labelled series of /metrics, keyed by their full text name."""
        _, text = self.request("GET", "/metrics")
        out: dict[str, float] = {}
        for line in text.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    continue
        return out

    def metric(self, name: str) -> float:
        return self.metrics().get(name, float("nan"))

    def assertion_count(self) -> int:
        return int(self.metric("stemedb_assertions_total"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@contextmanager
def server(
    env: dict[str, str] | None = None, data: Path | None = None, cpus: str | None = None
) -> Iterator[Server]:
    """A server on `data` (kept) or on a fresh temp directory (removed afterwards)."""
    if data is not None:
        srv = Server(data, env, cpus)
        try:
            yield srv
        finally:
            srv.stop()
        return
    with tempfile.TemporaryDirectory(prefix="stemedb-bench-", dir=work_dir()) as tmp:
        srv = Server(Path(tmp), env, cpus)
        try:
            yield srv
        finally:
            srv.stop()


def stop_all(servers: Iterable[Server], dirs: Iterable[Path]) -> None:
    """Stop side-by-side servers, then remove their data folders (a bench's `finally`)."""
    for srv in servers:
        srv.stop()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def work_dir() -> str:
    """Where databases under test live: BENCH_TMPDIR, else the system temp dir."""
    path = os.environ.get("BENCH_TMPDIR") or tempfile.gettempdir()
    Path(path).mkdir(parents=True, exist_ok=True)
    return path
