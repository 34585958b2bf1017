"""How many new signing agents one API key (or address) may introduce per hour.

Anyone with a writer key can mint Ed25519 keys for free, and consensus
counts agents: the cheapest attack on an answer is a thousand fresh signers
(issue 19 item 4). `min_agent_age` takes their voice away at read time; this
limit makes the flood slow to write in the first place. A write whose signer
the journal has never seen (no row in the `agents` projection,
store/agents_seen.py) costs one token of its payer's bucket — the API key,
or the client address with auth off, the same payer the quotas charge. Each
bucket holds `STEMEDB_NEW_AGENTS_PER_HOUR` tokens (default 500, 0 = off) and
refills continuously over an hour. A write that needs more tokens than are
left gets 429 `rate_limited` with Retry-After, and nothing is written.
Signers already in the journal cost nothing, so established agents keep
writing whatever a flood did to the bucket. Admin keys are not limited: an
admin can create writer keys anyway, and imports and transfers that replay
many signers run with one.

The default (500 an hour) leaves room for bulk writes of a few hundred
signers (the acceptance batteries put 102 new agents in one batch) while a
1,000-agent flood takes one writer key two hours; `min_agent_age` is what
keeps such a flood from flipping consensus in the meantime.

An agent counts once: the first request that introduces it is charged, and
later requests carrying it (a retry, a second record before the first is
journalled) are not, even if that first write was refused for another
reason (a conflict, a full disk).

Where it runs: in the write path, once the write service has prepared the
records (`WriteService.check_signers`, wired by `wire`), so the body is
parsed once and the signer ids come from the validated records. The
middleware part only notes who pays for the request (no body read). A record
the service refuses before that point (invalid, forbidden) is not charged.
The same check records, for agents a non-admin API key introduces, which key
that was (`agent_clusters`, migrations/0015; with auth on, whether or not the
limit is on): the agents of one key form a *cluster*, whose near-duplicate
claims count once in consensus (lenses/dedupe.py, docs/security.md).
Agents known to be in the journal, or already charged, are kept in a bounded
in-memory set (`REMEMBERED`, oldest forgotten first), so a write whose
signers were all seen before costs no database lookup; only unseen signers
are looked up (one query per write that has any).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

import falcon

from stemedb.config import Settings
from stemedb.errors import RateLimited, StemeError
from stemedb.http.route import current_route
from stemedb.metrics import Metrics
from stemedb.security.per_store import PerStore
from stemedb.security.ratelimit import BucketTable, client_address, parse_networks
from stemedb.store import agent_clusters, agents_seen

log = logging.getLogger("stemedb.security")

ENV = "STEMEDB_NEW_AGENTS_PER_HOUR"
REMEMBERED = 200_000  # agents known to be journalled or already charged
RETRY_CAP_S = 3600.0


@dataclass(frozen=True)
class _Payer:
    """Who pays for the current request's new agents, and under which route."""

    name: str
    template: str
    api_key: str | None  # the writer key's id; None with auth off


# Set by the middleware for a limited write request, read by the write service's
# hook in the same thread; None for admins, other routes and in-process writers.
_CURRENT: ContextVar[_Payer | None] = ContextVar("stemedb_new_agent_payer", default=None)


class NewAgentLimit:
    """The limit (shared per store) and its Falcon middleware half, which runs
    after the security middleware (it reads the API key) and only notes the payer."""

    _per_store: ClassVar[PerStore[NewAgentLimit]] = PerStore()

    @classmethod
    def for_store(cls, store: Any, settings: Settings, metrics: Metrics | None) -> NewAgentLimit:
        """The one limit of a server: the middleware and the write service share it."""
        return cls._per_store.get(store, lambda: cls(settings, store, metrics))

    def __init__(self, settings: Settings, store: Any, metrics: Metrics | None = None) -> None:
        self.per_hour = settings.new_agents_per_hour
        self.track_clusters = settings.auth_enabled
        self.capacity = float(self.per_hour)
        self.rate = self.capacity / 3600.0
        self.store = store
        self.metrics = metrics
        self.trusted = parse_networks(settings.trusted_proxy)
        self.table = BucketTable()
        self._known: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return (self.per_hour > 0 or self.track_clusters) and self.store is not None

    def wire(self, writes: Any) -> None:
        """Check each prepared write's signers (`WriteService.check_signers`)."""
        if self.active:
            writes.check_signers = self.check

    # ---- middleware: who pays ------------------------------------------------

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        _CURRENT.set(None)  # waitress reuses threads: never inherit a payer
        route = current_route(req)
        if not self.active or route is None or route.auth != "write":
            return
        key = getattr(req.context, "api_key", None)
        if key is not None and key.role == "admin":
            return  # admins mint keys anyway; imports and transfers run with theirs
        _CURRENT.set(_Payer(self._payer(req), route.template, key.id if key else None))

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        _CURRENT.set(None)

    def _payer(self, req: falcon.Request) -> str:
        key = getattr(req.context, "api_key", None)
        if key is not None:
            return f"key:{key.id}"
        address = getattr(req.context, "client_address", None)
        return f"ip:{address or client_address(req, self.trusted)}"

    # ---- write path: the check -----------------------------------------------

    def check(self, records: Iterable[Any]) -> None:
        """Charge the current payer for the unseen signers of prepared `records`
        (PendingRecord-like: `.record` is the validated dict); 429 if over budget."""
        payer = _CURRENT.get()
        if payer is None:
            return
        signers: dict[bytes, None] = {}
        for pending in records:
            signers.update(dict.fromkeys(agents_seen.signer_ids(pending.record)))
        if not signers:
            return
        with self._lock:
            unknown = [agent for agent in signers if agent not in self._known]
        if not unknown:
            return
        with self.store.reader() as conn:
            known = agents_seen.known_agents(conn, unknown)
        self._remember(known)
        new = [agent for agent in unknown if agent not in known]
        if not new:
            return
        if self.per_hour > 0:
            self._take(payer, new)
        if payer.api_key is not None and self.track_clusters:
            self._introduced(payer.api_key, new)
        self._remember(new)  # charged once, even if this write then fails

    def _introduced(self, api_key: str, agents: list[bytes]) -> None:
        """Note which key introduced `agents` (queued before the write's own records)."""
        rows = [(agent, api_key, int(time.time() * 1000)) for agent in agents]
        try:
            self.store.write_local(lambda conn: agent_clusters.record(conn, rows), wait=False)
        except StemeError as exc:  # the write itself will fail the same way
            log.warning("could not note the key that introduced %d agents: %s", len(rows), exc)

    def _remember(self, agents: Iterable[bytes]) -> None:
        with self._lock:
            for agent in agents:
                self._known[agent] = None
                self._known.move_to_end(agent)
            while len(self._known) > REMEMBERED:
                self._known.popitem(last=False)

    def _take(self, payer: _Payer, new: list[bytes]) -> None:
        cost = len(new)
        if cost > self.capacity:
            self._refuse(
                payer.template,
                f"this write introduces {cost} new signing agents, more than {payer.name} may "
                f"introduce in an hour ({self.per_hour}, {ENV}); send them in smaller parts",
                RETRY_CAP_S,
            )
        result = self.table.take(payer.name, self.capacity, self.rate, float(cost))
        if not result.allowed:
            retry = min(result.retry_after_s, RETRY_CAP_S)
            self._refuse(
                payer.template,
                f"new-agent limit reached: {payer.name} may introduce {self.per_hour} new "
                f"signing agents per hour ({ENV}); this write introduces {cost}, "
                f"{result.remaining} left; retry in {max(1, math.ceil(retry))} s. Agents "
                "already in the journal are not limited",
                retry,
            )

    def _refuse(self, template: str, message: str, retry_after_s: float) -> NoReturn:
        if self.metrics is not None:
            self.metrics.rate_limited_total.labels(template).inc()
        raise RateLimited(message, retry_after_s)
