"""The query audit trail: who asked what, and which assertions shaped the answer.

Rows are written through the writer queue without waiting, so auditing never
slows a query's response; a full disk loses audit rows, never journal frames.
Rows queue up here and go to the writer as one deferred job per batch: it rides
along with the next commit of writes, or gets a commit of its own within 100 ms,
so a read-only load costs ten audit commits a second, not one per few queries.
Reading the audit trail first flushes what is pending, so it always shows every
query answered before the read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

import apsw
import orjson

from stemedb.errors import NotFound, StemeError
from stemedb.store import Store
from stemedb.store.schema import fetchall

log = logging.getLogger("stemedb.audit")

PURGE_EVERY = 1000
# A queued flush normally runs within milliseconds; one that has not run after this
# long was dropped with a failed batch (e.g. a full disk), so queue another.
REQUEUE_S = 1.0

_Entry = tuple[str, int, str | None, str, str | None, dict[str, Any], list[dict[str, Any]]]


def _params_json(params: dict[str, Any]) -> str:
    """Compact JSON of the query parameters (anything unusual as its str)."""
    try:
        return orjson.dumps(params, default=str).decode()
    except TypeError:  # e.g. an integer beyond 64 bits: the standard library takes it
        return json.dumps(params, separators=(",", ":"), default=str)


def _results_json(results: list[dict[str, Any]]) -> str:
    return orjson.dumps(results).decode()


class AuditLog:
    def __init__(self, store: Store, *, enabled: bool, retention_days: int) -> None:
        self.store = store
        self.enabled = enabled
        self.retention_ms = retention_days * 86400 * 1000
        self._since_purge = 0
        self._lock = threading.Lock()
        self._pending: list[_Entry] = []
        self._flush_queued_at: float | None = None  # monotonic time a flush job was queued

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
        # Only the cheap part here: the row's summary of `body` is taken now (the
        # caller may reuse the dict), serialising happens on the writer thread.
        entry = (
            query_id,
            int(time.time() * 1000),
            agent_id,
            endpoint,
            lens,
            params,
            _summary(body),
        )
        now = time.monotonic()
        with self._lock:
            self._pending.append(entry)
            if self._flush_queued_at is not None and now - self._flush_queued_at < REQUEUE_S:
                return  # the queued flush takes this row too
            self._flush_queued_at = now
        try:
            self.store.write_local(self._flush, wait=False, defer=True)
        except StemeError as exc:  # writer down or read-only: the query still answers
            with self._lock:
                dropped, self._pending = len(self._pending), []
                self._flush_queued_at = None
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
        rows = [
            (
                query_id,
                at_ms,
                agent_id,
                endpoint,
                lens,
                _params_json(params),
                _results_json(results),
            )
            for query_id, at_ms, agent_id, endpoint, lens, params, results in entries
        ]
        conn.executemany("INSERT OR REPLACE INTO query_audit VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self._since_purge += len(rows)
        if self._since_purge >= PURGE_EVERY:
            self._since_purge = 0
            cutoff = int(time.time() * 1000) - self.retention_ms
            conn.execute("DELETE FROM query_audit WHERE at_ms < ?", (cutoff,))

    def _flush_now(self) -> None:
        """Commit pending rows before reading them (read-your-audit)."""
        if not self.enabled or not self._pending:
            return
        with contextlib.suppress(StemeError):  # writer down or read-only: show what is committed
            self.store.write_local(self._flush, wait=True)

    def list(
        self, agent_id: str | None, from_s: int | None, to_s: int | None, limit: int
    ) -> list[dict[str, Any]]:
        clauses: list[str] = ["1"]
        params: list[Any] = []
        if agent_id:
            clauses.append("agent_id = ?")
            params.append(agent_id)
        if from_s is not None:
            clauses.append("at_ms >= ?")
            params.append(from_s * 1000)
        if to_s is not None:
            clauses.append("at_ms <= ?")
            params.append(to_s * 1000)
        where = " AND ".join(clauses)
        sql = f"SELECT * FROM query_audit WHERE {where} ORDER BY at_ms DESC, query_id LIMIT ?"
        self._flush_now()
        with self.store.reader() as conn:
            rows = fetchall(conn, sql, (*params, limit))
        return [_entry(r) for r in rows]

    def get(self, query_id: str) -> dict[str, Any]:
        self._flush_now()
        with self.store.reader() as conn:
            rows = fetchall(conn, "SELECT * FROM query_audit WHERE query_id = ?", (query_id,))
        if not rows:
            raise NotFound(
                f"no audited query {query_id}", [{"field": "query_id", "problem": "unknown"}]
            )
        return _entry(rows[0])


def _entry(row: tuple[Any, ...]) -> dict[str, Any]:
    query_id, at_ms, agent_id, endpoint, lens, params, results = row
    return {
        "query_id": query_id,
        "at_ms": int(at_ms),
        "agent_id": agent_id,
        "endpoint": endpoint,
        "lens": lens,
        "params": json.loads(params),
        "results": json.loads(results),
    }


def _summary(body: dict[str, Any]) -> list[dict[str, Any]]:
    """What the audit keeps of a response: per group the winner and contributions."""
    if "assertions" in body:
        return [{"listed": [a["hash"] for a in body["assertions"]]}]
    return [
        {
            "subject": group.get("subject"),
            "predicate": group.get("predicate"),
            "winner": (group.get("winner") or {}).get("hash"),
            "resolution_confidence": group.get("resolution_confidence"),
            "contributions": [
                {"hash": e["hash"], "weight": e["score"], "excluded": e["excluded"]}
                for e in group.get("explanation", [])
            ],
        }
        for group in body.get("results", [])
    ]
