"""Shared pieces of the reliability suite: signed records, file-level checks, live servers.

Everything here talks to the server the way an operator or a client would: over
HTTP, or by opening the database file read-only next to it (SQLite's WAL lets
a reader look at a file a live server is writing).
"""

from __future__ import annotations

import importlib.util
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw

from stemedb.config import DEFAULT_SCHEME_TIERS
from stemedb.records import prepare_record
from stemedb.signing import make_assertion
from stemedb.store import schema
from stemedb.store.verify import VerifyReport, verify


def _load_root_conftest() -> Any:
    """tests/conftest.py by path (the same module object tests/e2e/conftest.py loads).

    pytest keeps only the most recently imported `conftest` in sys.modules, so a
    plain `from conftest import ...` here could get another folder's conftest.
    """
    name = "_stemedb_tests_root_conftest"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_root = _load_root_conftest()
SERVE_ARGV: tuple[str, ...] = _root.SERVE_ARGV
ServerProcess = _root.ServerProcess
StartServer = _root.StartServer
http_json = _root.http_json
server_env = _root.server_env

# Rate limits and quotas would turn a load test into a rate-limit test.
RELIABILITY_ENV: dict[str, str] = {
    "STEMEDB_RATE_LIMIT_READ": "0",
    "STEMEDB_RATE_LIMIT_WRITE": "0",
    "STEMEDB_RATE_LIMIT_ADMIN": "0",
    "STEMEDB_QUOTA_ENABLED": "false",
}

RUNBOOK_SECTION_3 = "docs/operations/runbooks/server-wont-start.md §3"


@dataclass(frozen=True)
class Signed:
    """A signed assertion as POSTed, and what the server must store for it."""

    payload: dict[str, Any]
    hash: str  # record id, hex
    body: str  # canonical JSON the journal frame must hold
    subject: str
    predicate: str


class RecordFactory:
    """Deterministic signed assertions (seeded key, unique subject/predicate per record).

    Thread-safe: several client threads may share one factory.
    """

    def __init__(self, seed: int, prefix: str, *, pad: int = 0) -> None:
        rng = random.Random(seed)
        self._key = rng.randbytes(32)
        self._rng = random.Random(rng.random())
        self._prefix = prefix
        self._pad = pad
        self._count = 0
        self._lock = threading.Lock()
        self.now_s = int(time.time())

    def next(self) -> Signed:
        with self._lock:
            n = self._count
            self._count += 1
            confidence = round(self._rng.random(), 3)
        subject = f"{self._prefix}/s{n // 20}"
        predicate = f"p{n}"
        extra: dict[str, Any] = {"source": f"doi://10.1000/{self._prefix}.{n}"}
        obj: Any = f"value {n} " + "x" * self._pad if self._pad else n
        payload = make_assertion(
            self._key, subject, predicate, obj, confidence, now_s=self.now_s, **extra
        )
        prepared = prepare_record(
            "assertion",
            payload,
            now_s=self.now_s,
            scheme_tiers=DEFAULT_SCHEME_TIERS,
            require_signatures=True,
        )
        return Signed(payload, prepared.hash_hex, prepared.body, subject, predicate)


# ---- the database file, read-only next to a live server ------------------------------


def open_readonly(path: Path) -> apsw.Connection:
    conn: apsw.Connection = schema.connect(f"file:{path}?mode=ro", readonly=True)
    return conn


def file_head(path: Path) -> tuple[int, str]:
    """(seq, chain hex) of the last journal frame, read from the file itself."""
    conn = open_readonly(path)
    try:
        rows = schema.fetchall(conn, "SELECT seq, chain FROM journal ORDER BY seq DESC LIMIT 1")
    finally:
        conn.close()
    return int(rows[0][0]), bytes(rows[0][1]).hex()


def journal_bodies(path: Path) -> dict[str, str]:
    """hash hex -> body of every non-header frame, plus the assertions projection's hashes."""
    conn = open_readonly(path)
    try:
        conn.execute("BEGIN")
        frames = schema.fetchall(conn, "SELECT hash, body FROM journal WHERE seq > 0")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return {bytes(h).hex(): str(b) for h, b in frames}


def projected_hashes(path: Path) -> set[str]:
    conn = open_readonly(path)
    try:
        rows = schema.fetchall(conn, "SELECT hash FROM assertions")
    finally:
        conn.close()
    return {bytes(r[0]).hex() for r in rows}


def verify_ok(path: Path, *, full: bool = False) -> VerifyReport:
    """`stemedb verify` on the file; fails the test with the report when anything is off."""
    report = verify(path, full=full)
    assert report.ok, f"verify{' --full' if full else ''} failed: {report.to_dict()}"
    return report


def cli_has_verify() -> bool:
    """True when `stemedb verify` exists (the CLI command is being built in parallel)."""
    argv = [sys.executable, "-m", "stemedb.cli.main", "verify", "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode == 0


def cli_verify(path: Path, *, full: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "stemedb.cli.main", "verify", "--db", str(path)]
    if full:
        argv.append("--full")
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


# ---- live servers that outlive one test ----------------------------------------------


@contextmanager
def live_server(
    workdir: Path,
    env: Mapping[str, str] | None = None,
    *,
    ready_path: str = "/v1/health",
    log_name: str = "server.log",
    argv: tuple[str, ...] = SERVE_ARGV,
) -> Iterator[Any]:
    """A real `stemedb serve` under `workdir` (module-scoped fixtures); killed on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    merged = server_env(workdir, {**RELIABILITY_ENV, **(env or {})})
    proc = ServerProcess(argv, merged, workdir, workdir / log_name)
    try:
        assert proc.wait_ready(ready_path, 60), f"server did not start:\n{proc.output}"
        yield proc
    finally:
        proc.kill()


def traceback_exceptions(log_text: str) -> list[str]:
    """The exception line ("OverflowError: ...") ending each traceback in a server log."""
    found: list[str] = []
    log_text = log_text.replace("\\n", "\n")  # the text log escapes a traceback's newlines
    for block in log_text.split("Traceback (most recent call last):")[1:]:
        for line in block.splitlines():
            if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line):
                found.append(line.strip())
                break
        else:
            found.append("(unparsed traceback)")
    return found
