"""The security middleware: authenticate, rate limit, authorise, scope, meter.

One Falcon middleware runs the steps in this order for every non-public
route (public routes — health, ready, metrics, docs — skip all of it):

1. identify the caller: a valid `X-API-Key` (auth on), else its address;
2. rate limit by that identity, so even callers with a bad key are limited;
3. refuse a missing/unknown/expired/revoked key (401) or too small a role (403);
4. a scoped writer's record must stay inside its scope (403, see `scope`) on
   the single-record routes; a batch is checked record by record in the write
   service (`stemedb.security.kinds`), where each record also needs the role
   of its own kind;
5. take the request's quota cost from its payer (API key, or address with auth
   off) and its agent (429 `quota_exhausted`), settled on the way out.

It sits before the body guard, so an unauthenticated request is refused
without its body being read.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import falcon

from stemedb.config import Settings
from stemedb.errors import Forbidden, RateLimited, Unauthorized
from stemedb.http.route import Route, current_route
from stemedb.metrics import Metrics
from stemedb.security.body import body_limit
from stemedb.security.keys import REQUIRED_ROLE, ApiKey, KeyStore
from stemedb.security.quota import (
    Charge,
    QuotaMeter,
    exhausted_message,
    quota_headers,
    settled_cost,
    upfront_cost,
)
from stemedb.security.ratelimit import (
    RateLimiter,
    client_address,
    parse_networks,
    rate_limit_headers,
)
from stemedb.security.scope import BATCH_TEMPLATE, enforce_scope

log = logging.getLogger("stemedb.security")

API_KEY_HEADER = "X-API-Key"
QUOTA_RETRY_CAP_S = 3600.0


class SecurityMiddleware:
    def __init__(
        self,
        settings: Settings,
        *,
        keys: KeyStore | None,
        store: Any = None,
        metrics: Metrics | None = None,
    ) -> None:
        if settings.auth_enabled and keys is None:
            raise ValueError("auth is enabled but no KeyStore was given")
        self.settings = settings
        self.keys = keys
        self.store = store
        self.metrics = metrics
        self.trusted = parse_networks(settings.trusted_proxy)
        self.limiter = RateLimiter(settings)
        self.quota = QuotaMeter(settings) if settings.quota_enabled else None

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        route = current_route(req)
        if route is None or route.auth == "public":
            return
        key, failure = self._identify(req)
        client = client_address(req, self.trusted)
        req.context.client_address = client
        req.context.api_key = key
        self._rate_limit(req, resp, route, f"key:{key.id}" if key else f"ip:{client}")
        if failure is not None:
            log.info("401 %s %s from %s: %s", req.method, req.path[:200], client, failure)
            raise failure
        if key is not None:
            self._authorise(req, route, key)
        if self.quota is not None:
            self._take_quota(req, resp, route, key, client)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, ok: bool
    ) -> None:
        charge: Charge | None = getattr(req.context, "quota_charge", None)
        route = current_route(req)
        if charge is None or self.quota is None or route is None:
            return
        extra = settled_cost(route, resp.media, charge.lens_charged) if ok else 0
        quota_headers(resp, self.quota.charge(charge.subjects, extra))

    # ---- the steps ---------------------------------------------------------

    def _identify(self, req: falcon.Request) -> tuple[ApiKey | None, Unauthorized | None]:
        if not self.settings.auth_enabled or self.keys is None:
            return None, None
        try:
            return self.keys.authenticate(req.get_header(API_KEY_HEADER)), None
        except Unauthorized as exc:
            return None, exc

    def _rate_limit(
        self, req: falcon.Request, resp: falcon.Response, route: Route, client: str
    ) -> None:
        result = self.limiter.check(client, route.auth)
        if result is None:
            return
        rate_limit_headers(resp, result)
        if not result.allowed:
            self._count_429(route)
            raise RateLimited(
                f"rate limit exceeded for {route.auth} requests ({result.limit} per "
                f"burst); retry in {max(1, math.ceil(result.retry_after_s))} s",
                result.retry_after_s,
            )

    def _authorise(self, req: falcon.Request, route: Route, key: ApiKey) -> None:
        if not key.allows(route.auth):
            needed = REQUIRED_ROLE[route.auth]
            log.warning(
                "403 %s %s: key %s (%s) lacks the %s role",
                req.method,
                route.template,
                key.id,
                key.role,
                needed,
            )
            raise Forbidden(
                f"API key {key.id} has the {key.role} role; {route.method} {route.template} "
                f"needs {needed}",
                [{"field": API_KEY_HEADER, "problem": f"role {key.role} < {needed}"}],
            )
        if key.scope is not None and route.auth == "write" and route.template != BATCH_TEMPLATE:
            try:
                enforce_scope(req, route, key.scope, self.store, self.settings.max_body_bytes)
            except Forbidden:
                log.warning(
                    "403 %s %s: key %s wrote outside its scope", req.method, route.template, key.id
                )
                raise

    def _take_quota(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        route: Route,
        key: ApiKey | None,
        client: str,
    ) -> None:
        assert self.quota is not None
        cost = upfront_cost(req, route)
        if cost is None or (req.content_length or 0) > body_limit(
            route, self.settings.max_body_bytes
        ):
            return  # not metered, or a body the guard refuses next (413)
        subjects = self.quota.subjects(req, route, key.id if key else None, client)
        result = self.quota.take(subjects, cost)
        quota_headers(resp, result)
        if not result.allowed:
            self._count_429(route)
            raise RateLimited(
                exhausted_message(cost, result, self.quota.capacity),
                min(result.retry_after_s, QUOTA_RETRY_CAP_S),
                code="quota_exhausted",
            )
        req.context.quota_charge = Charge(subjects, cost, bool(req.get_param("lens")))

    def _count_429(self, route: Route) -> None:
        if self.metrics is not None:
            self.metrics.rate_limited_total.labels(route.template).inc()
