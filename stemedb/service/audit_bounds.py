"""Bounds of the query audit trail: the size of one row, and the growth per minute.

Why: each query writes an audit row kept `STEMEDB_AUDIT_RETENTION_DAYS`, so an
unbounded row (a listing of 1,000 hashes, a 1,000-candidate explanation, a
long parameter) or an unbounded rate of them lets any reader with a read-only
key fill the disk (200 listing queries once wrote 12.4 MB in 5 s). Here:

* `bounded_row` keeps at most `LISTED_MAX` listed hashes, `GROUPS_MAX` groups,
  `CONTRIBUTIONS_MAX` contributions per group and `TEXT_MAX` characters of any
  text, and at most `ROW_MAX_BYTES` in all (groups are halved until it fits).
  What was cut is recorded in the row: `*_total` counts next to a cut list, and
  a `truncated` marker (stored under the `_truncated` key of the parameters,
  shown as `truncated` by the audit endpoints) naming each cut and its count.
* `Budget` charges every row's bytes to its client and to the total, per
  minute. A row over either budget is dropped (counted by reason); the first
  row of the next minute brings one summary row of the minute before
  (`endpoint = "audit_summary"`): rows dropped per reason and the clients that
  lost most, so the trail still says who was over budget.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

TEXT_MAX = 256
LISTED_MAX = 100
GROUPS_MAX = 8
CONTRIBUTIONS_MAX = 32
ROW_MAX_BYTES = 32 * 1024
ROW_OVERHEAD = 128  # id, time, agent, endpoint, lens and SQLite's own record overhead
TRUNCATED_KEY = "_truncated"
WINDOW_MS = 60_000
CLIENTS_MAX = 10_000  # distinct clients tracked per minute; more share one budget
SUMMARY_CLIENTS = 10  # clients named in a summary row


@dataclass
class AuditStats:
    """Counters for /metrics (read at scrape time)."""

    rows: int = 0
    bytes: int = 0
    truncated: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # e.g. an integer beyond 64 bits: the standard library takes it
        return json.dumps(value, separators=(",", ":"), default=str)


def _text(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TEXT_MAX:
        return value[:TEXT_MAX]
    return value


def bounded_row(params: dict[str, Any], body: dict[str, Any]) -> tuple[str, str, bool]:
    """(params JSON, results JSON, whether anything was cut) of one audit row."""
    cut: dict[str, Any] = {}
    kept_params: dict[str, Any] = {}
    for name, value in params.items():
        kept_params[name] = _text(value)
        if kept_params[name] is not value:
            cut.setdefault("params", []).append(name)
    results = _results(body, cut)
    groups = len(results)
    while True:
        if cut:
            kept_params[TRUNCATED_KEY] = {**cut, "limits": _LIMITS}
        params_json, results_json = _dumps(kept_params), _dumps(results)
        if len(params_json) + len(results_json) <= ROW_MAX_BYTES or not results:
            return params_json, results_json, bool(cut)
        groups //= 2  # still too large (long texts everywhere): keep fewer groups
        cut["groups"] = cut.get("groups", 0) + len(results) - groups
        results = results[:groups]


_LIMITS = {
    "text_chars": TEXT_MAX,
    "listed": LISTED_MAX,
    "groups": GROUPS_MAX,
    "contributions": CONTRIBUTIONS_MAX,
    "row_bytes": ROW_MAX_BYTES,
}


def _results(body: dict[str, Any], cut: dict[str, Any]) -> list[dict[str, Any]]:
    """What the audit keeps of a response: per group the winner and contributions."""
    if "assertions" in body:
        hashes = [a["hash"] for a in body["assertions"]]
        item: dict[str, Any] = {"listed": hashes[:LISTED_MAX]}
        if len(hashes) > LISTED_MAX:
            item["listed_total"] = len(hashes)
            cut["listed"] = len(hashes) - LISTED_MAX
        return [item]
    groups = body.get("results", [])
    if len(groups) > GROUPS_MAX:
        cut["groups"] = len(groups) - GROUPS_MAX
    out = []
    for group in groups[:GROUPS_MAX]:
        explanation = group.get("explanation", [])
        kept = {
            "subject": _text(group.get("subject")),
            "predicate": _text(group.get("predicate")),
            "winner": (group.get("winner") or {}).get("hash"),
            "resolution_confidence": group.get("resolution_confidence"),
            "contributions": [
                {"hash": e["hash"], "weight": e["score"], "excluded": _text(e["excluded"])}
                for e in explanation[:CONTRIBUTIONS_MAX]
            ],
        }
        if len(explanation) > CONTRIBUTIONS_MAX:
            kept["contributions_total"] = len(explanation)
            cut["contributions"] = (
                cut.get("contributions", 0) + len(explanation) - CONTRIBUTIONS_MAX
            )
        out.append(kept)
    return out


class Budget:
    """Bytes of audit rows per client and in total, per minute (not thread-safe:
    the AuditLog calls it under its lock)."""

    def __init__(self, per_client: int, total: int) -> None:
        self.per_client = per_client
        self.total = total
        self._window = -1
        self._used_total = 0
        self._used: dict[str, int] = {}
        self._dropped: dict[str, int] = {}  # reason -> rows
        self._dropped_by: dict[str, int] = {}  # client -> rows
        self._dropped_endpoints: dict[str, int] = {}

    def roll(self, at_ms: int) -> tuple[str, int, None, str, None, str, str] | None:
        """Start the minute of `at_ms`; the summary row of the minute before, if it dropped any."""
        window = at_ms // WINDOW_MS
        if window == self._window:
            return None
        summary = self._summary() if self._dropped else None
        self._window = window
        self._used_total = 0
        self._used.clear()
        self._dropped, self._dropped_by, self._dropped_endpoints = {}, {}, {}
        return summary

    def charge(self, client: str, size: int, endpoint: str) -> str | None:
        """Take `size` bytes for `client`'s row; the reason it is dropped, or None."""
        if client not in self._used and len(self._used) >= CLIENTS_MAX:
            client = "(other clients)"
        used = self._used.get(client, 0)
        reason = None
        if used + size > self.per_client:
            reason = "client_budget"
        elif self._used_total + size > self.total:
            reason = "total_budget"
        if reason is None:
            self._used[client] = used + size
            self._used_total += size
            return None
        self._dropped[reason] = self._dropped.get(reason, 0) + 1
        if client in self._dropped_by or len(self._dropped_by) < CLIENTS_MAX:
            self._dropped_by[client] = self._dropped_by.get(client, 0) + 1
        self._dropped_endpoints[endpoint] = self._dropped_endpoints.get(endpoint, 0) + 1
        return reason

    def _summary(self) -> tuple[str, int, None, str, None, str, str]:
        start_ms = self._window * WINDOW_MS
        top = sorted(self._dropped_by.items(), key=lambda kv: (-kv[1], kv[0]))
        results = [
            {
                "dropped": sum(self._dropped.values()),
                "reasons": dict(self._dropped),
                "endpoints": dict(self._dropped_endpoints),
                "clients": [
                    {"client": _text(client), "dropped": rows}
                    for client, rows in top[:SUMMARY_CLIENTS]
                ],
                "clients_not_named": max(0, len(top) - SUMMARY_CLIENTS),
            }
        ]
        params = {
            "window_start_ms": start_ms,
            "window_ms": WINDOW_MS,
            "per_client_bytes": self.per_client,
            "total_bytes": self.total,
        }
        return (
            f"audit-summary-{start_ms}",
            start_ms + WINDOW_MS,
            None,
            "audit_summary",
            None,
            _dumps(params),
            _dumps(results),
        )
