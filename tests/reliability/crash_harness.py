"""Crash-safety harness: concurrent signed writes, `kill -9` at random moments, restart, check.

One `CrashHarness` owns one database directory and runs rounds against the real
server process (waitress, port 0, its own temp dir):

1. start `stemedb serve` on the existing data (recovery runs here);
2. several client threads send signed writes over keep-alive connections —
   single `POST /v1/assert` and small `POST /v1/assert/batch` — and record,
   per record, what the server said: acknowledged (2xx), refused (503/507),
   or in doubt (the connection died before an answer);
3. after a random delay (seeded RNG) the server gets SIGKILL — or, in a
   SIGTERM round, SIGTERM, and must exit 0 after draining;
4. on the next start the ledger is checked against the file and the API:
   every acknowledged record is present with exactly the body that was
   signed; every refused one is absent; an in-doubt one is either absent or
   complete (journal frame + projection + GET 200), never half there; no
   frame exists that no client sent; the chain verifies; `/v1/health`
   reports the file's chain head.

Some kills land while the server is still starting (recovery, migrations),
which exercises recovery of a recovery. `STEMEDB_CRASH_KILLS` sets the number
of kills (default 20 in CI).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rel_support import (
    RecordFactory,
    Signed,
    file_head,
    http_json,
    journal_bodies,
    projected_hashes,
    verify_ok,
)

# A started `stemedb serve` (tests/conftest.py's ServerProcess) and the fixture making them.
ServerProcess = Any
StartServer = Callable[..., Any]

# The only answers a write may get in these runs.
ACK = "acked"  # 2xx: the record is durable
REFUSED = "refused"  # 503/507: nothing was written
IN_DOUBT = "in_doubt"  # no answer: either absent or complete, never half
PRESENT = "present"  # an in-doubt record found complete after a restart
ABSENT = "absent"  # an in-doubt record found absent after a restart

DEFAULT_KILLS = 20


def kills_from_env(default: int = DEFAULT_KILLS) -> int:
    raw = os.environ.get("STEMEDB_CRASH_KILLS", "").strip()
    return int(raw) if raw else default


@dataclass
class Entry:
    record: Signed
    state: str = IN_DOUBT
    fetched: bool = False  # checked over HTTP after a restart


@dataclass
class CrashReport:
    """What a run proved; the figures docs/reliability.md quotes."""

    seed: int
    kills: int = 0
    kills_during_startup: int = 0
    sigterms: int = 0
    restarts: int = 0
    requests: int = 0
    acked: int = 0
    refused: int = 0
    in_doubt_present: int = 0
    in_doubt_absent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    journal_seq: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Ledger:
    """Per record: what the server answered. Thread-safe."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.unexpected: list[str] = []
        self.statuses: dict[str, int] = {}
        self.requests = 0
        self._lock = threading.Lock()

    def sent(self, records: list[Signed]) -> None:
        with self._lock:
            self.requests += 1
            for record in records:
                self.entries[record.hash] = Entry(record)

    def answer(self, records: list[Signed], state: str, status: str) -> None:
        with self._lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            for record in records:
                self.entries[record.hash].state = state

    def problem(self, text: str) -> None:
        with self._lock:
            self.unexpected.append(text)

    def count(self, state: str) -> int:
        with self._lock:
            return sum(1 for e in self.entries.values() if e.state == state)


class Client(threading.Thread):
    """One keep-alive connection sending signed writes until told to stop or the server dies."""

    def __init__(
        self,
        url: str,
        factory: RecordFactory,
        ledger: Ledger,
        rng: random.Random,
        stop: threading.Event,
    ) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.factory = factory
        self.ledger = ledger
        self.rng = rng
        self._stop_event = stop
        self.failed_with: str | None = None

    def run(self) -> None:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=15)
        try:
            while not self._stop_event.is_set():
                size = 1 if self.rng.random() < 0.6 else self.rng.randint(2, 6)
                records = [self.factory.next() for _ in range(size)]
                if not self._send(conn, records):
                    return
        finally:
            conn.close()

    def _send(self, conn: http.client.HTTPConnection, records: list[Signed]) -> bool:
        single = len(records) == 1
        path = "/v1/assert" if single else "/v1/assert/batch"
        payload: Any = records[0].payload if single else [r.payload for r in records]
        body = json.dumps(payload).encode()
        self.ledger.sent(records)
        try:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.failed_with = type(exc).__name__
            self.ledger.answer(records, IN_DOUBT, f"no answer ({type(exc).__name__})")
            return False
        status = resp.status
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        if status in (503, 507):
            code = (answer or {}).get("error", {}).get("code")
            self.ledger.answer(records, REFUSED, f"{status} {code}")
            if status == 507:  # disk full: keep trying, gently
                time.sleep(0.02)
                return True
            return False  # shutting down
        if single and status in (200, 201) and isinstance(answer, dict):
            if answer.get("hash") != records[0].hash:
                self.ledger.problem(f"{path}: hash {answer.get('hash')} != {records[0].hash}")
            self.ledger.answer(records, ACK, str(status))
            return True
        if not single and status == 200 and isinstance(answer, dict):
            results = answer.get("results") or []
            ok = len(results) == len(records) and all(
                r.get("status") in ("created", "exists") and r.get("hash") == rec.hash
                for r, rec in zip(results, records, strict=False)
            )
            if not ok:
                self.ledger.problem(f"batch answer does not match its records: {answer}")
            self.ledger.answer(records, ACK, "200 batch")
            return True
        self.ledger.problem(f"{path}: unexpected {status} {raw[:300]!r}")
        self.ledger.answer(records, REFUSED, str(status))
        return True


class CrashHarness:
    """One database directory, many server lives; a ledger checked after every restart."""

    def __init__(
        self,
        workdir: Path,
        start: StartServer,
        *,
        seed: int,
        clients: int = 4,
        env: Mapping[str, str] | None = None,
        startup_kill_share: float = 0.15,
    ) -> None:
        self.workdir = workdir
        self.db_path = workdir / "db" / "stemedb.db"
        self.start = start
        self.rng = random.Random(seed)
        self.clients = clients
        self.env = dict(env or {})
        self.startup_kill_share = startup_kill_share
        self.ledger = Ledger()
        self.factory = RecordFactory(seed, "crash", pad=self.rng.randint(0, 200))
        self.report = CrashReport(seed=seed)
        self.round = 0
        self._strict_next = False  # after a graceful stop, unanswered writes must be absent
        self._started = time.monotonic()

    # ---- one server life ---------------------------------------------------------

    def _server(self) -> ServerProcess:
        server = self.start(self.env)
        if server.returncode is not None:
            raise AssertionError(
                f"round {self.round}: server did not restart (exit {server.returncode}):\n"
                f"{server.output[-4000:]}"
            )
        self.report.restarts += 1
        return server

    def load(self, server: ServerProcess, seconds: float) -> None:
        """Write from every client for `seconds` against a server that stays up."""
        stop, clients = self._load(server)
        time.sleep(seconds)
        stop.set()
        self._join(clients)

    def _load(self, server: ServerProcess) -> tuple[threading.Event, list[Client]]:
        stop = threading.Event()
        clients = [
            Client(
                server.url,
                self.factory,
                self.ledger,
                random.Random(self.rng.random()),
                stop,
            )
            for _ in range(self.clients)
        ]
        for client in clients:
            client.start()
        return stop, clients

    @staticmethod
    def _join(clients: list[Client], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for client in clients:
            client.join(max(0.1, deadline - time.monotonic()))
            assert not client.is_alive(), "a client thread hung after the server died"

    def kill_round(self) -> None:
        """Start, load, SIGKILL at a random moment (sometimes during start-up), check."""
        self.round += 1
        if self.round > 1 and self.rng.random() < self.startup_kill_share:
            self._kill_during_startup()
        server = self._server()
        self.check(server)
        stop, clients = self._load(server)
        time.sleep(self.rng.uniform(0.05, 0.9))
        os.kill(server.pid, signal.SIGKILL)
        stop.set()
        server.wait(10)
        self._join(clients)
        self.report.kills += 1

    def _kill_during_startup(self) -> None:
        server = self.start(self.env, wait=False)
        time.sleep(self.rng.uniform(0.0, 1.2))
        if server.returncode is None:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(10)
            self.report.kills += 1
            self.report.kills_during_startup += 1

    def sigterm_round(self, load_seconds: float = 1.0) -> tuple[int, ServerProcess]:
        """Start, load, SIGTERM while clients keep writing; return (exit code, server)."""
        self.round += 1
        server = self._server()
        self.check(server)
        stop, clients = self._load(server)
        time.sleep(load_seconds)
        server.proc.send_signal(signal.SIGTERM)
        code = server.wait(30)
        stop.set()
        self._join(clients)
        self.report.sigterms += 1
        self._strict_next = True
        return code, server

    def final_check(self) -> CrashReport:
        """Restart once more, check, stop cleanly, then `verify --full` on the stopped file."""
        self.round += 1
        server = self._server()
        self.check(server)
        assert server.stop(signal.SIGTERM) == 0, server.output[-3000:]
        verify_ok(self.db_path, full=True)
        self.report.journal_seq = file_head(self.db_path)[0]
        self.report.requests = self.ledger.requests
        self.report.acked = self.ledger.count(ACK)
        self.report.refused = self.ledger.count(REFUSED)
        self.report.in_doubt_present = self.ledger.count(PRESENT)
        self.report.in_doubt_absent = self.ledger.count(ABSENT)
        self.report.statuses = dict(sorted(self.ledger.statuses.items()))
        self.report.seconds = round(time.monotonic() - self._started, 1)
        return self.report

    # ---- the checks after every restart ---------------------------------------------

    def check(self, server: ServerProcess) -> None:
        """Compare the ledger with the file and the API of a freshly started server.

        After a graceful stop (SIGTERM) an unanswered write must be absent: the
        server promised to answer everything it committed before exiting.
        """
        strict_in_doubt, self._strict_next = self._strict_next, False
        assert not self.ledger.unexpected, self.ledger.unexpected[:5]
        where = f"round {self.round}"
        status, _, health = http_json("GET", server.url + "/v1/health")
        assert status == 200 and health["status"] == "healthy", (where, status, health)
        seq, chain = file_head(self.db_path)
        assert (health["journal_seq"], health["chain_head"]) == (seq, chain), (
            f"{where}: /v1/health says seq {health['journal_seq']} {health['chain_head']}, "
            f"the file says seq {seq} {chain}"
        )
        verify_ok(self.db_path)
        stored = journal_bodies(self.db_path)
        projected = projected_hashes(self.db_path)
        assert projected == set(stored), (
            f"{where}: journal and assertions projection differ: "
            f"{len(set(stored) ^ projected)} hashes"
        )
        phantoms = set(stored) - set(self.ledger.entries)
        assert not phantoms, f"{where}: frames no client sent: {sorted(phantoms)[:3]}"
        to_fetch: list[tuple[str, bool]] = []
        for digest, entry in self.ledger.entries.items():
            body = stored.get(digest)
            if entry.state in (ACK, PRESENT):
                assert body is not None, f"{where}: acknowledged record {digest} is missing"
                assert body == entry.record.body, f"{where}: record {digest} body differs"
            elif entry.state in (REFUSED, ABSENT):
                assert body is None, f"{where}: record {digest} ({entry.state}) is present"
            elif entry.state == IN_DOUBT:
                if body is not None:
                    assert not strict_in_doubt, (
                        f"{where}: {digest} was committed but its request was never answered"
                    )
                    assert body == entry.record.body, f"{where}: record {digest} is half there"
                    entry.state = PRESENT
                else:
                    entry.state = ABSENT
            if not entry.fetched:
                entry.fetched = True
                to_fetch.append((digest, body is not None))
        self._check_over_http(server, to_fetch)

    def _check_over_http(self, server: ServerProcess, to_fetch: list[tuple[str, bool]]) -> None:
        """GET every record not fetched yet: 200 with the record, or 404 when absent."""
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=15)
        try:
            for digest, present in to_fetch:
                conn.request("GET", f"/v1/assertions/{digest}")
                resp = conn.getresponse()
                data = json.loads(resp.read())
                if not present:
                    assert resp.status == 404, (digest, resp.status, data)
                    continue
                assert resp.status == 200, (digest, resp.status, data)
                record = self.ledger.entries[digest].record
                assert data["hash"] == digest
                assert (data["subject"], data["predicate"]) == (record.subject, record.predicate)
                assert data["signatures"] == json.loads(record.body)["signatures"]
        finally:
            conn.close()
