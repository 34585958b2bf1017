"""Token-bucket rate limits per client, and who the client is.

A client is its API key id when the request carries a valid key, else its IP
address. `X-Forwarded-For` is believed only when the TCP peer is one of
`STEMEDB_TRUSTED_PROXY` (addresses or CIDR networks): the list is walked from
the right, skipping trusted hops, and the first untrusted address is the
client (nginx's `$proxy_add_x_forwarded_for` appends the address it saw, so
whatever a client wrote to the left of it is ignored).

Each route class (`read`, `write`, `admin` from `Route.auth`) has its own
bucket per client; `public` routes (health, ready, metrics, docs) are never
limited. Buckets live in a bounded LRU table: a bucket idle long enough to be
full again is indistinguishable from a new one and is dropped first.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import falcon

from stemedb.config import RateLimit, Settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_BUCKETS = 100_000
SWEEP_EVERY = 1024


@dataclass
class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second; may go negative (debt)."""

    capacity: float
    rate: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, cost: float, now: float) -> bool:
        """Take `cost` tokens if that many are there; False (nothing taken) otherwise."""
        self.refill(now)
        if self.tokens + 1e-9 < cost:
            return False
        self.tokens -= cost
        return True

    def charge(self, cost: float, now: float) -> None:
        """Take `cost` tokens unconditionally (settling a cost known only afterwards)."""
        self.refill(now)
        self.tokens -= cost

    def seconds_until(self, tokens: float) -> float:
        missing = tokens - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def full_at(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.rate >= self.capacity


@dataclass(frozen=True)
class Decision:
    """The outcome of taking from a bucket, with what the response headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: float


def decision(bucket: TokenBucket, allowed: bool, cost: float) -> Decision:
    return Decision(
        allowed=allowed,
        limit=int(bucket.capacity),
        remaining=max(0, math.floor(bucket.tokens + 1e-9)),
        reset_s=math.ceil(bucket.seconds_until(bucket.capacity)),
        retry_after_s=0.0 if allowed else bucket.seconds_until(cost),
    )


class BucketTable:
    """Thread-safe buckets by key, at most `max_entries` of them (LRU, idle first)."""

    def __init__(self, max_entries: int = MAX_BUCKETS) -> None:
        self.max_entries = max_entries
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()
        self._inserts = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def take(
        self, key: str, capacity: float, rate: float, cost: float, now: float | None = None
    ) -> Decision:
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._bucket(key, capacity, rate, now)
            allowed = bucket.take(cost, now)
            return decision(bucket, allowed, cost)

    def charge(
        self, key: str, capacity: float, rate: float, cost: float, now: float | None = None
    ) -> Decision:
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._bucket(key, capacity, rate, now)
            bucket.charge(cost, now)
            return decision(bucket, True, 0.0)

    def take_all(
        self,
        keys: Sequence[str],
        capacity: float,
        rate: float,
        cost: float,
        now: float | None = None,
        *,
        force: bool = False,
    ) -> Decision:
        """Take `cost` from every bucket of `keys`, or from none if one lacks it.

        A request charged to several payers (its API key or address, and its
        agent) must find the tokens in each; the answer describes the bucket
        that binds (the refusing one, else the emptiest). With `force` (settling
        a cost known only afterwards) every bucket is charged, into debt if need
        be, like `charge`.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            buckets = [self._bucket(key, capacity, rate, now) for key in dict.fromkeys(keys)]
            for bucket in buckets:
                bucket.refill(now)
            short = [] if force else [b for b in buckets if b.tokens + 1e-9 < cost]
            if short:
                return decision(max(short, key=lambda b: b.seconds_until(cost)), False, cost)
            for bucket in buckets:
                bucket.tokens -= cost
            return decision(min(buckets, key=lambda b: b.tokens), True, 0.0 if force else cost)

    def _bucket(self, key: str, capacity: float, rate: float, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            self._inserts += 1
            if self._inserts % SWEEP_EVERY == 0 or len(self._buckets) >= self.max_entries:
                self._evict(now)
            bucket = self._buckets[key] = TokenBucket(capacity, rate, capacity, now)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def _evict(self, now: float) -> None:
        """Drop idle (full again) buckets from the cold end; then enforce the cap."""
        while self._buckets:
            oldest_key = next(iter(self._buckets))
            if not self._buckets[oldest_key].full_at(now):
                break
            del self._buckets[oldest_key]
        while len(self._buckets) >= self.max_entries:
            self._buckets.popitem(last=False)


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """`127.0.0.1`, `10.0.0.0/8`, `::1` -> networks (ValueError on a bad entry)."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, nets: tuple[IPNetwork, ...]
) -> bool:
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in nets)


def client_address(req: falcon.Request, trusted: tuple[IPNetwork, ...]) -> str:
    """The client's IP address, through trusted proxies only."""
    peer = req.remote_addr or "unknown"
    if not trusted or not _trusted(_address(peer), trusted):
        return peer
    forwarded = req.get_header("X-Forwarded-For") or ""
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage to the right of any real address: trust nothing further
        if not _trusted(address, trusted):
            return str(address)
    return peer


class RateLimiter:
    """Per-client buckets for the read, write and admin route classes."""

    def __init__(self, settings: Settings, *, max_entries: int = MAX_BUCKETS) -> None:
        self.limits: dict[str, RateLimit] = {
            "read": settings.rate_limit_read,
            "write": settings.rate_limit_write,
            "admin": settings.rate_limit_admin,
        }
        self.table = BucketTable(max_entries)

    def check(self, client: str, route_class: str, now: float | None = None) -> Decision | None:
        """Take one token; None when this class is not limited (public, or rate 0)."""
        limit = self.limits.get(route_class)
        if limit is None or not limit.enabled:
            return None
        return self.table.take(f"{route_class}\x00{client}", limit.burst, limit.rate, 1.0, now)


def rate_limit_headers(resp: falcon.Response, result: Decision) -> None:
    resp.set_header("RateLimit-Limit", str(result.limit))
    resp.set_header("RateLimit-Remaining", str(result.remaining))
    resp.set_header("RateLimit-Reset", str(result.reset_s))
