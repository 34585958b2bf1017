"""Per-agent circuit breakers: an agent gone wrong is stopped before it floods the journal.

Issue 19 item 3. Rate limits and quotas bound what a *payer* (API key or
address) may spend; they do not notice that one signing agent has started
writing garbage (most of its records refused) or is suddenly writing a
hundred times faster than it ever did (a runaway loop, a stolen key). A
breaker watches each agent's writes in fixed windows of
`STEMEDB_BREAKER_WINDOW` seconds and *trips* when, in the current window:

* `rejections`: at least `STEMEDB_BREAKER_MIN_RECORDS` of its records were
  seen and at least `STEMEDB_BREAKER_REJECT_RATIO` of them were refused
  (400/404/409/422 answers, `rejected` batch items; auth and rate-limit
  refusals belong to the payer, not the agent, and are not counted);
* `rate_jump`: it wrote at least `STEMEDB_BREAKER_RATE_MIN` records and more
  than `STEMEDB_BREAKER_RATE_FACTOR` times its history (an exponentially
  weighted mean of its records per window; an agent with no history has a
  baseline of 0, so only the absolute floor applies).

A tripped agent's writes (any record it signs first, on any write route,
batch included) get 429 `breaker_open` naming the reason and the reset time,
for `STEMEDB_BREAKER_OPEN_S` seconds or until an admin resets it
(`POST /v1/admin/breakers/{agent_id}/reset`); `GET /v1/admin/breakers`
lists them. Trips are counted in `stemedb_breaker_trips_total{reason}`,
open breakers in `stemedb_breakers_open`.

The agent is the first signer of each record, which is a *claim* until its
signature is checked; with auth on the breaker is therefore kept per
(API key, agent), like quotas, so a client can only trip agents under its own
key. Admin keys are never limited (imports and transfers run with them).
Counting lives in memory, but a trip is persisted (the `breaker_trips`
table, migrations/0011, stemedb/store/breaker_trips.py): a tripped agent
cannot get a fresh start by waiting for (or provoking) a restart. At start
the open trips are loaded back with their reason, reset time and trip count;
an admin reset deletes them. Windows and history below a trip are not kept
(docs/security.md, "Circuit breakers"). Off unless `STEMEDB_BREAKER_ENABLED`.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import apsw
import falcon

from stemedb.config import Settings
from stemedb.errors import RateLimited, StemeError
from stemedb.http.route import current_route
from stemedb.metrics import Metrics
from stemedb.security.body import iter_records, readable_body
from stemedb.security.per_store import PerStore
from stemedb.store import breaker_trips

log = logging.getLogger("stemedb.security")

EWMA_ALPHA = 0.3  # weight of the newest finished window in an agent's history
MAX_AGENTS = 100_000  # tracked subjects; idle closed ones are dropped first
COUNTED_STATUSES = frozenset({400, 404, 409, 422})  # the agent's fault, not the payer's
NOT_AGENT_FAULT = frozenset({"forbidden", "rate_limited", "unauthorized", "breaker_open"})
REASONS = ("rejections", "rate_jump")
RUNBOOK = "docs/operations/runbooks/abuse.md#a-tripped-breaker"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class BreakerPolicy:
    enabled: bool = False
    window_s: float = 60.0
    min_records: int = 20
    reject_ratio: float = 0.5
    rate_min: int = 1000
    rate_factor: float = 10.0
    open_s: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings) -> BreakerPolicy:
        return cls(
            enabled=settings.breaker_enabled,
            window_s=settings.breaker_window_s,
            min_records=settings.breaker_min_records,
            reject_ratio=settings.breaker_reject_ratio,
            rate_min=settings.breaker_rate_min,
            rate_factor=settings.breaker_rate_factor,
            open_s=settings.breaker_open_s,
        )


@dataclass
class _State:
    window_start: float
    records: int = 0
    rejected: int = 0
    baseline: float = 0.0
    windows: int = 0
    open_until: float = 0.0
    reason: str | None = None
    detail: str = ""
    tripped_at: float = 0.0
    trips: int = 0
    last_seen: float = field(default=0.0)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Breakers:
    """Every agent's breaker (thread-safe); the middleware and the admin routes share it."""

    _per_store: ClassVar[PerStore[Breakers]] = PerStore()

    @classmethod
    def for_store(cls, store: Any, settings: Settings, metrics: Metrics | None) -> Breakers:
        """The one Breakers of a server (its store): the middleware and admin routes share it."""
        return cls._per_store.get(
            store, lambda: cls(BreakerPolicy.from_settings(settings), metrics, store=store)
        )

    def __init__(
        self, policy: BreakerPolicy, metrics: Metrics | None = None, *, store: Any = None
    ) -> None:
        self.policy = policy
        self.metrics = metrics
        self.store = store
        self._states: dict[tuple[str | None, str], _State] = {}
        self._lock = threading.Lock()
        if policy.enabled:
            self._load()
        if metrics is not None:
            metrics.breakers_open.set_function(lambda: float(self.open_count()))
            for reason in REASONS:  # exported at 0 from the start, so rate() sees the first trip
                metrics.breaker_trips_total.labels(reason)

    # ---- persistence ------------------------------------------------------

    def _load(self) -> None:
        """Reopen the trips saved before a restart (still open ones only)."""
        if self.store is None:
            return
        now = time.time()
        try:
            with self.store.reader() as conn:
                rows = breaker_trips.open_rows(conn, int(now * 1000))
        except (StemeError, apsw.Error) as exc:
            log.warning("could not load circuit-breaker trips (breakers start closed): %s", exc)
            return
        for payer, agent, reason, detail, tripped_ms, until_ms, trips, baseline in rows:
            self._states[(payer or None, str(agent))] = _State(
                window_start=now,
                baseline=float(baseline),
                open_until=int(until_ms) / 1000.0,
                reason=str(reason),
                detail=str(detail),
                tripped_at=int(tripped_ms) / 1000.0,
                trips=int(trips),
                last_seen=now,
            )
        if rows:
            log.warning(
                "%d circuit breaker(s) still open from before the restart (GET /v1/admin/"
                "breakers lists them; see %s)",
                len(rows),
                RUNBOOK,
            )

    def _persist(self, fn: Callable[[apsw.Connection], Any]) -> None:
        """Run a breaker_trips write on the store's writer; a failure is logged, not raised:
        the in-memory breaker is already right for this process."""
        if self.store is None or getattr(self.store, "writer", None) is None:
            return
        try:
            self.store.write_local(fn)
        except (StemeError, apsw.Error) as exc:
            log.warning("could not save circuit-breaker state (kept in memory only): %s", exc)

    # ---- bookkeeping ------------------------------------------------------

    def _roll(self, state: _State, now: float) -> None:
        """Fold finished windows into the agent's history (empty ones decay it)."""
        elapsed = int((now - state.window_start) // self.policy.window_s)
        if elapsed <= 0:
            return
        state.baseline = state.baseline * (1 - EWMA_ALPHA) + state.records * EWMA_ALPHA
        state.baseline *= (1 - EWMA_ALPHA) ** (elapsed - 1)
        state.windows += elapsed
        state.records = state.rejected = 0
        state.window_start += elapsed * self.policy.window_s

    def _state(self, subject: tuple[str | None, str], now: float) -> _State:
        state = self._states.get(subject)
        if state is None:
            if len(self._states) >= MAX_AGENTS:
                self._forget_idle(now)
            state = self._states[subject] = _State(window_start=now)
        self._roll(state, now)
        state.last_seen = now
        return state

    def _forget_idle(self, now: float) -> None:
        idle = sorted((s.last_seen, key) for key, s in self._states.items() if s.open_until <= now)
        for _, key in idle[: max(1, len(idle) // 10)]:
            del self._states[key]

    def observe(self, subject: tuple[str | None, str], records: int, rejected: int) -> None:
        """Count `records` written (of which `rejected` refused) by one agent; maybe trip."""
        p = self.policy
        now = time.time()
        with self._lock:
            state = self._state(subject, now)
            if state.open_until > now:
                return
            state.records += records
            state.rejected += rejected
            reason = detail = None
            if state.records >= p.min_records and state.rejected >= p.reject_ratio * state.records:
                reason = "rejections"
                detail = (
                    f"{state.rejected} of its {state.records} records in the last "
                    f"{p.window_s:g} s were refused (STEMEDB_BREAKER_REJECT_RATIO="
                    f"{p.reject_ratio:g}, STEMEDB_BREAKER_MIN_RECORDS={p.min_records})"
                )
            elif state.records >= p.rate_min and state.records > p.rate_factor * state.baseline:
                reason = "rate_jump"
                detail = (
                    f"{state.records} records in {p.window_s:g} s against a history of "
                    f"{state.baseline:.1f} per window (STEMEDB_BREAKER_RATE_FACTOR="
                    f"{p.rate_factor:g}, STEMEDB_BREAKER_RATE_MIN={p.rate_min})"
                )
            if reason is None:
                return
            state.reason, state.detail = reason, detail or ""
            state.tripped_at, state.open_until = now, now + p.open_s
            state.trips += 1
            state.records = state.rejected = 0
            row = (
                subject[0] or "",
                subject[1],
                reason,
                state.detail,
                int(now * 1000),
                int(state.open_until * 1000),
                state.trips,
                state.baseline,
            )
        if self.metrics is not None:
            self.metrics.breaker_trips_total.labels(reason).inc()
        self._persist(lambda conn: breaker_trips.save(conn, row, int(now * 1000)))

    def open_for(self, subject: tuple[str | None, str]) -> _State | None:
        now = time.time()
        with self._lock:
            state = self._states.get(subject)
            if state is not None and state.open_until > now:
                return state
        return None

    def open_count(self) -> int:
        now = time.time()
        with self._lock:
            return sum(1 for s in self._states.values() if s.open_until > now)

    # ---- admin ------------------------------------------------------------

    def listing(self, *, include_closed: bool = False) -> list[dict[str, Any]]:
        """Open breakers (and, on request, every agent that ever tripped), newest trip first."""
        now = time.time()
        with self._lock:
            items = [
                (key, s)
                for key, s in self._states.items()
                if s.open_until > now or (include_closed and s.trips)
            ]
            out = [
                {
                    "agent_id": agent,
                    "api_key": payer,
                    "state": "open" if s.open_until > now else "closed",
                    "reason": s.reason,
                    "detail": s.detail,
                    "tripped_at": _iso(s.tripped_at),
                    "reset_at": _iso(s.open_until),
                    "retry_after_s": max(0, math.ceil(s.open_until - now)),
                    "trips": s.trips,
                    "history_per_window": round(s.baseline, 3),
                }
                for (payer, agent), s in items
            ]
        out.sort(key=lambda item: str(item["tripped_at"]), reverse=True)
        return out

    def reset(self, agent_id: str) -> int:
        """Close every breaker of `agent_id` (all API keys); how many were open."""
        now = time.time()
        agent = agent_id.lower()
        closed = 0
        with self._lock:
            for (_, who), state in self._states.items():
                if who != agent:
                    continue
                if state.open_until > now:
                    closed += 1
                state.open_until = 0.0
                state.records = state.rejected = 0
        self._persist(lambda conn: breaker_trips.clear(conn, agent))
        return closed


def _first_signer(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    signatures = record.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        return None
    entry = signatures[0]
    agent = entry.get("agent_id") if isinstance(entry, dict) else None
    return agent.lower() if isinstance(agent, str) and _HEX64.match(agent) else None


def _status(resp: falcon.Response) -> int:
    try:
        return int(falcon.http_status_to_code(resp.status))
    except (ValueError, TypeError):
        return 0


class CircuitBreakers:
    """Falcon middleware: runs after the security middleware (it reads the API key)."""

    def __init__(self, settings: Settings, breakers: Breakers) -> None:
        self.breakers = breakers
        self.max_body_bytes = settings.max_body_bytes

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        route = current_route(req)
        if not self.breakers.policy.enabled or route is None or route.auth != "write":
            return
        key = getattr(req.context, "api_key", None)
        if key is not None and key.role == "admin":
            return
        if not readable_body(req, route, self.max_body_bytes):
            return
        payer = key.id if key is not None else None
        agents: dict[int, str] = {}
        for index, record in iter_records(req, route, self.max_body_bytes):
            agent = _first_signer(record)
            if agent is not None:
                agents[index] = agent
        req.context.breaker_agents = (payer, agents)
        for agent in dict.fromkeys(agents.values()):
            state = self.breakers.open_for((payer, agent))
            if state is not None:
                self._refuse(agent, state)

    def _refuse(self, agent: str, state: _State) -> None:
        retry = max(1.0, state.open_until - time.time())
        message = (
            f"circuit breaker open for agent {agent[:12]}: {state.reason}: {state.detail}; "
            f"its writes are refused until {_iso(state.open_until)} (retry in "
            f"{math.ceil(retry)} s) or an admin resets it; see {RUNBOOK}"
        )
        raise RateLimited(message, retry, code="breaker_open")

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        seen = getattr(req.context, "breaker_agents", None)
        if seen is None:
            return
        payer, agents = seen
        if not agents:
            return
        status = _status(resp)
        counts: dict[str, list[int]] = {}
        media = resp.media if 200 <= status < 300 else None
        results = media.get("results") if isinstance(media, dict) else None
        if isinstance(results, list):
            for item in results:
                index = item.get("index") if isinstance(item, dict) else None
                agent = agents.get(index) if isinstance(index, int) else None
                if agent is None or item.get("status") == "not_written":
                    continue
                error = item.get("error") or {}
                refused = item.get("status") == "rejected" and error.get("code") not in (
                    NOT_AGENT_FAULT
                )
                tally = counts.setdefault(agent, [0, 0])
                tally[0] += 1
                tally[1] += int(refused)
        elif 200 <= status < 300 or status in COUNTED_STATUSES:
            for agent in agents.values():
                tally = counts.setdefault(agent, [0, 0])
                tally[0] += 1
                tally[1] += int(status in COUNTED_STATUSES)
        for agent, (records, rejected) in counts.items():
            self.breakers.observe((payer, agent), records, rejected)
