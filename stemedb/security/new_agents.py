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
reason. That memory is bounded (`REMEMBERED`, oldest forgotten first).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any, NoReturn

import falcon

from stemedb.config import Settings
from stemedb.errors import RateLimited
from stemedb.http.route import current_route
from stemedb.metrics import Metrics
from stemedb.security.body import iter_records, readable_body
from stemedb.security.ratelimit import BucketTable, client_address, parse_networks
from stemedb.store import agents_seen

ENV = "STEMEDB_NEW_AGENTS_PER_HOUR"
REMEMBERED = 200_000  # agents already charged, not yet necessarily journalled
RETRY_CAP_S = 3600.0


class NewAgentLimit:
    """Falcon middleware: runs after the security middleware (it reads the API key)."""

    def __init__(self, settings: Settings, store: Any, metrics: Metrics | None = None) -> None:
        self.per_hour = settings.new_agents_per_hour
        self.capacity = float(self.per_hour)
        self.rate = self.capacity / 3600.0
        self.store = store
        self.metrics = metrics
        self.max_body_bytes = settings.max_body_bytes
        self.trusted = parse_networks(settings.trusted_proxy)
        self.table = BucketTable()
        self._charged: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        route = current_route(req)
        if self.per_hour <= 0 or self.store is None or route is None or route.auth != "write":
            return
        key = getattr(req.context, "api_key", None)
        if key is not None and key.role == "admin":
            return  # admins mint keys anyway; imports and transfers run with theirs
        if not readable_body(req, route, self.max_body_bytes):
            return  # no body, or one the body guard refuses next
        signers: dict[bytes, None] = {}
        for _, record in iter_records(req, route, self.max_body_bytes):
            if isinstance(record, dict):
                signers.update(dict.fromkeys(agents_seen.signer_ids(record)))
        with self._lock:
            unknown = [agent for agent in signers if agent not in self._charged]
        if not unknown:
            return
        with self.store.reader() as conn:
            known = agents_seen.known_agents(conn, unknown)
        new = [agent for agent in unknown if agent not in known]
        if new:
            self._take(req, route.template, new)

    def _payer(self, req: falcon.Request) -> str:
        key = getattr(req.context, "api_key", None)
        if key is not None:
            return f"key:{key.id}"
        address = getattr(req.context, "client_address", None)
        return f"ip:{address or client_address(req, self.trusted)}"

    def _take(self, req: falcon.Request, template: str, new: list[bytes]) -> None:
        payer = self._payer(req)
        cost = len(new)
        if cost > self.capacity:
            self._refuse(
                template,
                f"this write introduces {cost} new signing agents, more than {payer} may "
                f"introduce in an hour ({self.per_hour}, {ENV}); send them in smaller parts",
                RETRY_CAP_S,
            )
        result = self.table.take(payer, self.capacity, self.rate, float(cost))
        if not result.allowed:
            retry = min(result.retry_after_s, RETRY_CAP_S)
            self._refuse(
                template,
                f"new-agent limit reached: {payer} may introduce {self.per_hour} new signing "
                f"agents per hour ({ENV}); this write introduces {cost}, {result.remaining} "
                f"left; retry in {max(1, math.ceil(retry))} s. Agents already in the "
                "journal are not limited",
                retry,
            )
        with self._lock:
            for agent in new:
                self._charged[agent] = None
                self._charged.move_to_end(agent)
            while len(self._charged) > REMEMBERED:
                self._charged.popitem(last=False)

    def _refuse(self, template: str, message: str, retry_after_s: float) -> NoReturn:
        if self.metrics is not None:
            self.metrics.rate_limited_total.labels(template).inc()
        raise RateLimited(message, retry_after_s)
