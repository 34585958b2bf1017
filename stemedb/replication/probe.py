"""Replication lag on the primary, from the journal head and Litestream's own counters.

Why this shape: Litestream 0.5 exports per-database counters (`litestream_txid`,
`litestream_sync_count`, `litestream_sync_error_count`) but no "replicated up to"
position in our terms. The probe notes when each new journal head seq first
appears and counts it replicated once Litestream has finished two syncs after that
(one may have read the WAL just before the commit). Lag is the age of the oldest
head not yet confirmed, so it is 0 when idle and grows while Litestream is down,
stuck or failing: what the alert needs. Resolution: one poll (0.25 s) plus one sync.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from stemedb.replication import litestream

POLL_S = 0.25
CONFIRMING_SYNCS = 2


class LagProbe:
    def __init__(
        self,
        head_fn: Callable[[], int],
        addr: str,
        db_path: Path,
        supervisor: litestream.Supervisor | None = None,
    ) -> None:
        self.head_fn = head_fn
        self.addr = addr
        self.db_path = db_path
        self.supervisor = supervisor
        self.sample: litestream.Sample | None = None
        self.replicated_seq = 0  # newest head seq confirmed shipped
        self._pending: deque[tuple[int, float, int]] = deque()  # (seq, seen at, syncs then)
        self._last_head = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stemedb-repl-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self.poll()

    def poll(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        sample = litestream.scrape(self.addr, self.db_path)
        if sample is not None:
            self.sample = sample
        syncs = self.sample.syncs if self.sample is not None else 0
        try:
            head = self.head_fn()
        except Exception:  # store closing: keep the last state
            return
        if head != self._last_head:
            self._last_head = head
            self._pending.append((head, now, syncs))
        if sample is None:
            return  # not answering: nothing is confirmed, the lag grows
        while self._pending and sample.syncs >= self._pending[0][2] + CONFIRMING_SYNCS:
            self.replicated_seq = max(self.replicated_seq, self._pending.popleft()[0])

    def lag_seconds(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return now - self._pending[0][1] if self._pending else 0.0

    @property
    def errors(self) -> int:
        """Failed syncs Litestream counted, plus ERROR lines and exits the supervisor saw."""
        own = self.sample.sync_errors if self.sample is not None else 0
        return own + (self.supervisor.errors if self.supervisor is not None else 0)

    @property
    def up(self) -> bool:
        running = self.supervisor.running if self.supervisor is not None else True
        return running and litestream.scrape(self.addr, self.db_path, timeout=0.5) is not None
