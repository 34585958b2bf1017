"""The query audit trail: who asked what, and which assertions shaped the answer.

Rows are written through the writer queue without waiting, so auditing never
slows a query's response; a full disk loses audit rows, never journal frames.
Rows queue up here and go to the writer as one deferred job per batch: it rides
along with the next commit of writes, or gets a commit of its own within 100 ms,
so a read-only load costs ten audit commits a second, not one per few queries.
Reading the audit trail first flushes what is pending, so it always shows every
query answered before the read.

**Bounded (docs/security.md, "Hostile readers").** A reader must not be able
to fill the disk through the audit trail (200 listing queries of 1,000
assertions each once wrote 12.4 MB in 5 s). So each row is bounded
(`stemedb.service.audit_bounds`: long parameters cut, at most 100 listed
hashes, 8 groups, 32 contributions per group, 32 KiB in all; a `truncated`
marker says what was cut), and so is growth: per client (its API key, else
its address, else its `X-Agent-Id`) `STEMEDB_AUDIT_BYTES_PER_CLIENT` and in
all `STEMEDB_AUDIT_BYTES_TOTAL` bytes of rows per minute. Over a budget a
query's row is dropped and counted; one summary row per minute (endpoint
`audit_summary`) says how many rows were dropped, why, and from which
clients. Metrics: `stemedb_audit_rows_total`, `stemedb_audit_bytes_total`,
`stemedb_audit_rows_truncated_total`, `stemedb_audit_rows_dropped_total{reason}`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import apsw

from stemedb.config import Settings
from stemedb.errors import NotFound, StemeError
from stemedb.service.audit_bounds import (
    ROW_OVERHEAD,
    TRUNCATED_KEY,
    AuditStats,
    Budget,
    bounded_row,
)
from stemedb.store import Store, query_audit

log = logging.getLogger("stemedb.audit")

PURGE_EVERY = 1000
# A queued flush normally runs within milliseconds; one that has not run after this
# long was dropped with a failed batch (e.g. a full disk), so queue another.
REQUEUE_S = 1.0

# query_id, at_ms, agent_id, endpoint, lens, params JSON, results JSON
_Entry = tuple[str, int, str | None, str, str | None, str, str]
_local = threading.local()


@contextlib.contextmanager
def attributed(client: str) -> Iterator[None]:
    """Charge the audit rows written by this thread's request to `client`
    (`key:<id>`, `ip:<address>`): set by the HTTP layer, which knows who asks."""
    previous = getattr(_local, "client", None)
    _local.client = client
    try:
        yield
    finally:
        _local.client = previous


class AuditLog:
    def __init__(self, store: Store, *, enabled: bool, retention_days: int) -> None:
        self.store = store
        self.enabled = enabled
        self.retention_ms = retention_days * 86400 * 1000
        self._since_purge = 0
        self._lock = threading.Lock()
        self._pending: list[_Entry] = []
        self._flush_queued_at: float | None = None  # monotonic time a flush job was queued
        settings = getattr(store, "settings", None) or Settings()
        self.budget = Budget(settings.audit_bytes_per_client, settings.audit_bytes_total)
        self.stats = AuditStats()

    def record(
        self,
        query_id: str,
        agent_id: str | None,
        endpoint: str,
        lens: str | None,
        params: dict[str, Any],
        body: dict[str, Any],
    ) -> None:
        if not self.enabled:
            return
        client = getattr(_local, "client", None) or (f"agent:{agent_id}" if agent_id else "-")
        params_json, results_json, cut = bounded_row(params, body)
        size = ROW_OVERHEAD + len(params_json) + len(results_json)
        at_ms = int(time.time() * 1000)
        now = time.monotonic()
        with self._lock:
            summary = self.budget.roll(at_ms)
            if summary is not None:
                self._pending.append(summary)
            reason = self.budget.charge(client, size, endpoint)
            if reason is not None:
                self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + 1
                if summary is None:
                    return
            else:
                self._pending.append(
                    (query_id, at_ms, agent_id, endpoint, lens, params_json, results_json)
                )
                self.stats.rows += 1
                self.stats.bytes += size
                self.stats.truncated += 1 if cut else 0
            if self._flush_queued_at is not None and now - self._flush_queued_at < REQUEUE_S:
                return  # the queued flush takes this row too
            self._flush_queued_at = now
        try:
            self.store.write_local(self._flush, wait=False, defer=True)
        except StemeError as exc:  # writer down or read-only: the query still answers
            with self._lock:
                dropped, self._pending = len(self._pending), []
                self._flush_queued_at = None
                self.stats.dropped["unavailable"] = (
                    self.stats.dropped.get("unavailable", 0) + dropped
                )
            log.warning("query audit row%s dropped: %s", "s" if dropped > 1 else "", exc.message)

    def _flush(self, conn: apsw.Connection) -> None:
        """On the writer thread: insert every pending row in the writer's transaction.

        One writer job per batch of rows (not per query), so audit rows share the
        commit (and fsync) of whatever else the writer is committing.
        """
        with self._lock:
            entries, self._pending = self._pending, []
            self._flush_queued_at = None
        if not entries:
            return
        rows = entries
        query_audit.insert(conn, rows)
        self._since_purge += len(rows)
        if self._since_purge >= PURGE_EVERY:
            self._since_purge = 0
            cutoff = int(time.time() * 1000) - self.retention_ms
            query_audit.purge_before(conn, cutoff)

    def _flush_now(self) -> None:
        """Commit pending rows before reading them (read-your-audit)."""
        if not self.enabled:
            return
        with self._lock:
            summary = self.budget.roll(int(time.time() * 1000))  # a finished minute's summary
            if summary is not None:
                self._pending.append(summary)
        if not self._pending:
            return
        with contextlib.suppress(StemeError):  # writer down or read-only: show what is committed
            self.store.write_local(self._flush, wait=True)

    def list(
        self, agent_id: str | None, from_s: int | None, to_s: int | None, limit: int
    ) -> list[dict[str, Any]]:
        from_ms = None if from_s is None else from_s * 1000
        to_ms = None if to_s is None else to_s * 1000
        self._flush_now()
        with self.store.reader() as conn:
            rows = query_audit.newest(conn, agent_id, from_ms, to_ms, limit)
        return [_entry(r) for r in rows]

    def get(self, query_id: str) -> dict[str, Any]:
        self._flush_now()
        with self.store.reader() as conn:
            row = query_audit.by_id(conn, query_id)
        if row is None:
            raise NotFound(
                f"no audited query {query_id}", [{"field": "query_id", "problem": "unknown"}]
            )
        return _entry(row)


def _entry(row: tuple[Any, ...]) -> dict[str, Any]:
    query_id, at_ms, agent_id, endpoint, lens, params, results = row
    params_value = json.loads(params)
    entry = {
        "query_id": query_id,
        "at_ms": int(at_ms),
        "agent_id": agent_id,
        "endpoint": endpoint,
        "lens": lens,
        "params": params_value,
        "results": json.loads(results),
    }
    if isinstance(params_value, dict) and TRUNCATED_KEY in params_value:
        entry["truncated"] = params_value.pop(TRUNCATED_KEY)
    return entry
