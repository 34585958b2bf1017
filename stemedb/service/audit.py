"""The query audit trail: who asked what, and which assertions shaped the answer.

Rows are written through the writer queue without waiting, so auditing never
slows a query's response; a full disk loses audit rows, never journal frames.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import apsw

from stemedb.errors import NotFound, StemeError
from stemedb.store import Store
from stemedb.store.schema import fetchall

log = logging.getLogger("stemedb.audit")

PURGE_EVERY = 1000


class AuditLog:
    def __init__(self, store: Store, *, enabled: bool, retention_days: int) -> None:
        self.store = store
        self.enabled = enabled
        self.retention_ms = retention_days * 86400 * 1000
        self._since_purge = 0

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
        results = [
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
        if "assertions" in body:
            results = [{"listed": [a["hash"] for a in body["assertions"]]}]
        row = (
            query_id,
            int(time.time() * 1000),
            agent_id,
            endpoint,
            lens,
            json.dumps(params, separators=(",", ":"), default=str),
            json.dumps(results, separators=(",", ":")),
        )
        self._since_purge += 1
        purge = self._since_purge >= PURGE_EVERY
        if purge:
            self._since_purge = 0
        cutoff = int(time.time() * 1000) - self.retention_ms

        def write(conn: apsw.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO query_audit VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            if purge:
                conn.execute("DELETE FROM query_audit WHERE at_ms < ?", (cutoff,))

        try:
            self.store.write_local(write, wait=False)
        except StemeError as exc:  # writer down or read-only: the query still answers
            log.warning("query audit row dropped: %s", exc.message)

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
        with self.store.reader() as conn:
            rows = fetchall(conn, sql, (*params, limit))
        return [_entry(r) for r in rows]

    def get(self, query_id: str) -> dict[str, Any]:
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
