"""Quarantine use cases: the policy at start, held writes, the admin queue, lens filtering.

The decision to hold is made in the store, from journal state, when a frame
is applied (stemedb/store/quarantine.py); this module records the configured
policy so the store can read it, tells a writer that its record was held,
lists the queue, turns an admin's release/reject into a signed
`quarantine_decision` record, and keeps held (and rejected) assertions out
of lens candidates unless a query asks for them (`include_quarantined`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

import apsw

from stemedb.config import Settings
from stemedb.errors import InvalidRequest, NotFound, StemeError
from stemedb.metrics import Metrics
from stemedb.service.rights import Caller
from stemedb.service.writes import WriteAnswer, WriteService
from stemedb.store import Store
from stemedb.store import quarantine as store_quarantine
from stemedb.store.candidates import CandidateFilter, CandidateRow
from stemedb.store.quarantine import Policy

log = logging.getLogger("stemedb.quarantine")
KIND = "quarantine_decision"
RUNBOOK = "docs/operations/runbooks/abuse.md#a-full-quarantine"
GAUGE_TTL_S = 2.0


def policy_from(settings: Settings) -> Policy:
    return Policy(
        new_agent_s=settings.quarantine_new_agent_s,
        min_trust=settings.quarantine_min_trust,
        near_duplicates=settings.quarantine_near_duplicates,
    )


class QuarantineService:
    def __init__(self, store: Store, settings: Settings, metrics: Metrics | None = None) -> None:
        self.store = store
        self.policy = policy_from(settings)
        self.metrics = metrics
        self._gauge_at = float("-inf")
        self._gauge_value = 0.0
        self._gauge_lock = threading.Lock()
        self._record_policy()
        if metrics is not None:
            metrics.quarantine_held.set_function(self._held_gauge)

    def _record_policy(self) -> None:
        """Write the configured policy (if it changed) so frames from now on use it."""
        if self.store.writer is None:
            return  # read-only: nothing will be written, so nothing will be held
        now_ms = int(time.time() * 1000)
        try:
            changed = self.store.write_local(
                lambda conn: store_quarantine.record_policy(conn, self.policy, now_ms)
            )
        except StemeError as exc:
            log.warning("could not record the quarantine policy: %s", exc.message)
            return
        if changed:
            log.info("quarantine policy from the next frame on: %s", self.policy.to_json())

    def _held_gauge(self) -> float:
        with self._gauge_lock:
            now = time.monotonic()
            if now - self._gauge_at >= GAUGE_TTL_S:
                try:
                    with self.store.reader() as conn:
                        self._gauge_value = float(store_quarantine.held_count(conn))
                except (apsw.Error, StemeError):
                    pass  # keep the last value
                self._gauge_at = now
            return self._gauge_value

    # ---- writes -----------------------------------------------------------

    def wire(self, writes: WriteService) -> None:
        """Tell writers when their record was held (only while a rule is on)."""
        if self.policy.active:
            writes.on_written = self.mark_held

    def mark_held(self, items: list[dict[str, Any]]) -> None:
        """Add `quarantine` to each written item whose assertion was held."""
        seqs = [int(i["seq"]) for i in items if i.get("status") == "created" and i.get("seq")]
        if not seqs:
            return
        with self.store.reader() as conn:
            held = store_quarantine.held_among(conn, seqs)
        for item in items:
            found = held.get(int(item.get("seq") or 0))
            if found is None:
                continue
            reason, detail = found
            item["quarantine"] = {
                "state": "held",
                "reason": reason,
                "detail": detail,
                "note": "journalled, but lenses ignore it until an admin releases it "
                f"(POST /v1/admin/quarantine/{item['hash']}/release)",
            }
            if self.metrics is not None:
                self.metrics.quarantined_total.labels(reason).inc()

    # ---- the admin queue ----------------------------------------------------

    def listing(self, state: str, after_seq: int, limit: int) -> dict[str, Any]:
        with self.store.reader() as conn:
            rows = store_quarantine.list_rows(
                conn, state=state, after_seq=after_seq, limit=limit + 1
            )
            held = store_quarantine.held_count(conn)
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "records": rows,
            "count": len(rows),
            "held": held,
            "next_after": rows[-1]["seq"] if more and rows else None,
            "policy": {
                "new_agent_s": self.policy.new_agent_s,
                "min_trust": self.policy.min_trust,
                "near_duplicates": self.policy.near_duplicates,
            },
        }

    def decide(
        self, writes: WriteService, hash_text: str, decision: str, payload: Any, caller: Caller
    ) -> WriteAnswer:
        """POST .../{hash}/release|reject: the body is the signed quarantine_decision."""
        if not isinstance(payload, dict):
            raise InvalidRequest.field("body", "expected a signed quarantine_decision record")
        record = dict(payload)
        for field, wanted in (("target_hash", hash_text.lower()), ("decision", decision)):
            given = record.setdefault(field, wanted)
            if not isinstance(given, str) or given.lower() != wanted:
                raise InvalidRequest.field(field, f"must be {wanted!r} on this route")
        with self.store.reader() as conn:
            if store_quarantine.get(conn, bytes.fromhex(hash_text)) is None:
                raise NotFound(
                    f"{hash_text} is not in quarantine (GET /v1/admin/quarantine lists it)",
                    [{"field": "hash", "problem": "not a quarantined record"}],
                )
        answer = writes.write_one(KIND, record, caller=caller)
        log.warning("quarantine: %s of %s written (seq %s)", decision, hash_text, answer.body)
        return answer


# ---- lens candidates ---------------------------------------------------------------


class _Selection(Protocol):
    """What `split_rows` reads of the query service's Selection."""

    @property
    def filter(self) -> CandidateFilter: ...

    @property
    def include_quarantined(self) -> bool: ...


def split_rows(
    conn: apsw.Connection, rows: list[CandidateRow], sel: _Selection
) -> tuple[list[CandidateRow], dict[str, tuple[str, str, str]]]:
    """Drop held and rejected candidates (keep held ones with `include_quarantined`).

    Returns the kept rows and, per quarantined candidate hash (hex), its
    (state, reason, detail) as a reader at `known_at_ms` saw it. One primary
    key probe per candidate, and none at all while nothing was ever held.
    """
    if not rows or not store_quarantine.has_rows(conn):
        return rows, {}
    include = sel.include_quarantined
    found = store_quarantine.states(conn, (r.seq for r in rows), sel.filter.known_at_ms)
    if not found:
        return rows, {}
    notes = {r.hash.hex(): found[r.seq] for r in rows if r.seq in found}
    kept = [r for r in rows if r.seq not in found or (include and found[r.seq][0] == "held")]
    return kept, notes


def annotate(
    body: dict[str, Any], notes: Mapping[str, tuple[str, str, str]], include: bool
) -> None:
    """Say in a lens answer what quarantine left out, or let in on request."""
    if not notes:
        return
    for entry in body.get("explanation") or []:
        note = notes.get(entry.get("hash"))
        if note is not None:
            entry["why"] = (
                f"{entry['why']}; held in quarantine ({note[1]}: {note[2]}), counted because "
                "include_quarantined=true"
            )
    body["quarantined"] = [
        {"hash": h, "state": s, "reason": r, "detail": d, "counted": include and s == "held"}
        for h, (s, r, d) in sorted(notes.items())
    ]
    body["include_quarantined"] = include
