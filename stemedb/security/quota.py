"""Per-agent hourly token quotas (`STEMEDB_QUOTA_ENABLED`).

Each agent has a bucket of `STEMEDB_QUOTA_TOKENS_PER_HOUR` tokens that
refills continuously (the whole quota in one hour). A request costs:

| request | tokens |
|---|---|
| `POST /v1/assert` (`/v1/assertions`), `/v1/epoch`, `/supersede`, `/aliases`, `/outcome` | 10 |
| `POST /v1/vote` | 1 |
| `POST /v1/assert/batch` | 10 per record, whatever its kind |
| `GET/POST /v1/query` | 5, + 1 when a lens is used |
| `GET /v1/skeptic`, `/v1/layered` | 6 (a lens evaluation) |
| any other read (`read` routes) | 1 |
| admin routes, public routes | not metered |

plus 1 per full KiB of request body. The known part is taken before the
handler runs (429 `quota_exhausted` if the bucket lacks it, nothing taken);
what is only known afterwards (a batch's record count, a lens given in a
POST body) is charged when the response leaves, and may leave the bucket in
debt, which later requests wait out.

Every request is charged to **who pays** — its API key, or with auth off
its client address — and, when it names one, to its agent as well; it needs
the tokens in each bucket (or is refused, nothing taken). The agent is the
`X-Agent-Id` header, else the first signer (the lowest agent id, as the
record's `agent_id`) of the first record in a write body. Both are free to
invent (a header, a fresh signing key), so an agent bucket alone would give a
client that rotates them an unlimited quota; the payer's bucket is what binds
(issue 14, item 11). The agent bucket still stops one agent from spending
more than its quota through several addresses. With auth on it is kept per
(API key, agent): an agent id is a claim until its signature is checked, and
this way one key's client cannot spend another key's agents' quota. Every
bucket holds `STEMEDB_QUOTA_TOKENS_PER_HOUR`: a key (or address) writing for
many agents shares one quota among them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import falcon

from stemedb.config import Settings
from stemedb.http.route import Route
from stemedb.security.body import first_record, readable_body
from stemedb.security.ratelimit import BucketTable, Decision

RECORD_COST = 10
VOTE_COST = 1
QUERY_COST = 5
LENS_COST = 1
READ_COST = 1
SINGLE_WRITE_COSTS = {
    "/v1/assert": RECORD_COST,
    "/v1/assertions": RECORD_COST,
    "/v1/epoch": RECORD_COST,
    "/v1/supersede": RECORD_COST,
    "/v1/aliases": RECORD_COST,
    "/v1/outcome": RECORD_COST,
    "/v1/vote": VOTE_COST,
}
QUERY_TEMPLATE = "/v1/query"
LENS_TEMPLATES = frozenset({"/v1/skeptic", "/v1/layered"})
BATCH_TEMPLATE = "/v1/assert/batch"
_AGENT = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass
class Charge:
    """What one request was charged up front, and to whom (settled on the way out)."""

    subjects: tuple[str, ...]
    upfront: int
    lens_charged: bool


def upfront_cost(req: falcon.Request, route: Route) -> int | None:
    """Tokens known before the handler runs; None for routes that are not metered."""
    if route.auth in ("public", "admin"):
        return None
    body_kib = (req.content_length or 0) // 1024
    if route.template in SINGLE_WRITE_COSTS:
        return SINGLE_WRITE_COSTS[route.template] + body_kib
    if route.template == BATCH_TEMPLATE:
        return RECORD_COST + body_kib  # one record now; the rest once they are counted
    if route.template == QUERY_TEMPLATE:
        return QUERY_COST + (LENS_COST if req.get_param("lens") else 0) + body_kib
    if route.template in LENS_TEMPLATES:
        return QUERY_COST + LENS_COST + body_kib
    return READ_COST + body_kib


def settled_cost(route: Route, media: Any, lens_charged: bool) -> int:
    """Tokens known only from the response body."""
    if not isinstance(media, dict):
        return 0
    if route.template == BATCH_TEMPLATE and isinstance(media.get("results"), list):
        return RECORD_COST * (len(media["results"]) - 1)  # may refund an empty batch
    if route.template == QUERY_TEMPLATE and media.get("lens") and not lens_charged:
        return LENS_COST
    return 0


def _signer(record: Any) -> str | None:
    if not isinstance(record, dict) or not isinstance(record.get("signatures"), list):
        return None
    agents = [
        sig["agent_id"].lower()
        for sig in record["signatures"]
        if isinstance(sig, dict) and isinstance(sig.get("agent_id"), str)
        if _AGENT.match(sig["agent_id"])
    ]
    return min(agents) if agents else None


def agent_for(req: falcon.Request, route: Route, max_body_bytes: int) -> str | None:
    header = req.get_header("X-Agent-Id")
    if header and _AGENT.match(header):
        return header.lower()
    if route.auth == "write" and readable_body(req, route, max_body_bytes):
        return _signer(first_record(req, route))
    return None


class QuotaMeter:
    def __init__(self, settings: Settings, *, max_entries: int | None = None) -> None:
        self.capacity = float(settings.quota_tokens_per_hour)
        self.rate = self.capacity / 3600.0
        self.max_body_bytes = settings.max_body_bytes
        self.table = BucketTable(max_entries) if max_entries else BucketTable()

    def subjects(
        self, req: falcon.Request, route: Route, key_id: str | None, client: str
    ) -> tuple[str, ...]:
        """The buckets a request is charged to: its payer first, then its agent if any."""
        agent = agent_for(req, route, self.max_body_bytes)
        payer = f"key:{key_id}" if key_id is not None else f"ip:{client}"
        if agent is None:
            return (payer,)
        return (payer, f"{payer}/agent:{agent}" if key_id is not None else f"agent:{agent}")

    def take(self, subjects: tuple[str, ...], cost: int, now: float | None = None) -> Decision:
        return self.table.take_all(subjects, self.capacity, self.rate, float(cost), now)

    def charge(self, subjects: tuple[str, ...], cost: int, now: float | None = None) -> Decision:
        return self.table.take_all(subjects, self.capacity, self.rate, float(cost), now, force=True)


def quota_headers(resp: falcon.Response, result: Decision) -> None:
    resp.set_header("X-Quota-Limit", str(result.limit))
    resp.set_header("X-Quota-Remaining", str(result.remaining))
    resp.set_header("X-Quota-Reset", str(result.reset_s))


def exhausted_message(cost: int, result: Decision, capacity: float) -> str:
    if cost > capacity:
        return (
            f"this request costs {cost} quota tokens, more than the whole hourly quota "
            f"({int(capacity)}, STEMEDB_QUOTA_TOKENS_PER_HOUR); send it in smaller parts"
        )
    return (
        f"quota exhausted: this request costs {cost} tokens, {result.remaining} left; "
        f"retry in {max(1, math.ceil(result.retry_after_s))} s"
    )
