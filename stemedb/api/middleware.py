"""Cross-cutting HTTP concerns, one middleware class each.

Order matters (Falcon runs process_request/process_resource in list order and
process_response in reverse): request id first so every later step and the
error log can use it, metrics next so it times everything, the request
guard (size and media type) last so security middleware added by
`extra_middleware` rejects unauthenticated clients before bodies are looked at.
"""

from __future__ import annotations

import email.utils
import io
import time
from collections.abc import Iterable
from typing import Any

import falcon

from stemedb.api.errors import ApiError
from stemedb.api.media import media_type
from stemedb.api.routing import RouteResource, route_for
from stemedb.errors import PayloadTooLarge
from stemedb.ids import new_id
from stemedb.metrics import Metrics

REQUEST_ID_HEADER = "X-Request-Id"
MAX_REQUEST_ID = 128
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

# Only self-hosted assets: the /docs page loads its script, style and /openapi.json
# from this server and nothing else; JSON responses need none of it.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}
CORS_EXPOSED = (
    "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "
    "X-Quota-Limit, X-Quota-Remaining, X-Quota-Reset, X-StemeDB-Seq"
)


def sane_request_id(value: str | None) -> bool:
    """1-128 visible ASCII characters: safe to echo into headers and logs."""
    return (
        bool(value)
        and len(value or "") <= MAX_REQUEST_ID
        and all("!" <= ch <= "~" for ch in value or "")
    )


class RequestIdMiddleware:
    """Echo a sane X-Request-Id or make one; it is on every response, errors included."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header(REQUEST_ID_HEADER)
        req.context.request_id = given if sane_request_id(given) else new_id()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, ok: bool
    ) -> None:
        request_id = getattr(req.context, "request_id", None) or new_id()
        resp.set_header(REQUEST_ID_HEADER, request_id)


class RouteContextMiddleware:
    """Put the matched Route on `req.context.route` for the middleware after it."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.route = None

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        req.context.route = route_for(req, resource)


class MetricsMiddleware:
    """Count and time requests by method and route *template* (bounded label values)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, ok: bool
    ) -> None:
        started = getattr(req.context, "started", None)
        elapsed = time.perf_counter() - started if started is not None else 0.0
        route = req.uri_template if resource is not None and req.uri_template else "unmatched"
        self.metrics.observe_request(req.method, route, resp.status_code, elapsed)


_date_cache: tuple[int, str] = (-1, "")


def http_date(now: float | None = None) -> str:
    """The `Date` header value, formatted once per second.

    waitress formats it for every response when the app sends none (2 % of a
    query's CPU). The cache is one tuple, swapped whole, so threads never see
    a second paired with another second's text.
    """
    global _date_cache
    second = int(time.time() if now is None else now)
    cached_second, text = _date_cache
    if cached_second != second:
        text = email.utils.formatdate(second, usegmt=True)
        _date_cache = (second, text)
    return text


class SecurityHeadersMiddleware:
    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, ok: bool
    ) -> None:
        resp.set_headers(SECURITY_HEADERS)
        resp.set_header("Date", http_date())
        if req.path.startswith("/v1/") or req.path == "/metrics":
            resp.set_header("Cache-Control", "no-store")


class CORSMiddleware:
    """CORS for allow-listed origins only; other origins get no CORS headers at all."""

    def __init__(self, allowed_origins: Iterable[str]) -> None:
        self.allowed = frozenset(allowed_origins)

    def _origin(self, req: falcon.Request) -> str | None:
        origin = req.get_header("Origin")
        return origin if origin and (origin in self.allowed or "*" in self.allowed) else None

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        wanted = req.get_header("Access-Control-Request-Method")
        if req.method != "OPTIONS" or not wanted or self._origin(req) is None:
            return
        methods = sorted(resource.routes) if isinstance(resource, RouteResource) else []
        resp.status = falcon.HTTP_204
        resp.set_header("Access-Control-Allow-Methods", ", ".join(methods))
        requested = req.get_header("Access-Control-Request-Headers")
        if requested:
            resp.set_header("Access-Control-Allow-Headers", requested)
        resp.set_header("Access-Control-Max-Age", "600")
        resp.complete = True  # a preflight never reaches auth or the handler

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, ok: bool
    ) -> None:
        if not self.allowed:
            return
        resp.append_header("Vary", "Origin")
        origin = self._origin(req)
        if origin is not None:
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Access-Control-Expose-Headers", CORS_EXPOSED)


class RequestGuardMiddleware:
    """Refuse oversized bodies (before reading them) and unaccepted media types.

    `Content-Length` over the route's limit is refused outright; a body without
    one (chunked, on servers that pass it through) is read through a bound of
    limit+1 bytes and refused if it reaches it.
    """

    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        route = route_for(req, resource)
        if route is None:
            return  # unknown method on this template: the 405 responder answers
        limit = self.max_body_bytes * route.body_limit_factor
        length = req.content_length
        chunked = "chunked" in (req.get_header("Transfer-Encoding") or "").lower()
        if length is not None and length > limit:
            raise _too_large(length, limit)
        if length is None and chunked:
            length = _buffer_unsized_body(req, limit)
        if length and req.method in BODY_METHODS:
            given = media_type(req.content_type)
            if given not in route.content_types:
                raise ApiError(
                    415,
                    "unsupported_media_type",
                    f"Content-Type {given or '(none)'!r} is not accepted by "
                    f"{route.method} {route.template}; send {' or '.join(route.content_types)}",
                )


def _too_large(length: int | None, limit: int) -> PayloadTooLarge:
    size = f"{length} bytes" if length is not None else f"over {limit} bytes"
    return PayloadTooLarge(
        f"request body is {size}; this route accepts at most {limit} bytes (STEMEDB_MAX_BODY_BYTES)"
    )


def _buffer_unsized_body(req: falcon.Request, limit: int) -> int:
    data = req.stream.read(limit + 1)
    if len(data) > limit:
        raise _too_large(None, limit)
    req.env["wsgi.input"] = req.stream = io.BytesIO(data)
    req.env["CONTENT_LENGTH"] = str(len(data))
    return len(data)


class JournalSeqMiddleware:
    """`X-StemeDB-Seq` on every answer; `min_seq=N` waits (bounded) for seq N; 421 on a
    replica's writes (docs/operations/replication.md, "Reading your writes").

    The header is the journal head when the request arrived: the answer reflects at
    least every write up to it (reads take their snapshot after). A client that
    wrote seq N and reads from a replica with `?min_seq=N` gets an answer that
    includes its write, or after `STEMEDB_REPLICA_WAIT_MAX` seconds a 503
    `replica_behind` with Retry-After, never a silently stale one.
    """

    def __init__(self, store: Any, max_wait_s: float) -> None:
        self.store = store
        self.max_wait_s = max_wait_s

    def _head(self) -> int:
        return int(self.store.current_head.seq)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        params: Any = req.params  # a dict: taken out so routes never see an unknown field
        raw = params.pop("min_seq", None)
        if raw is not None:
            try:
                wanted = int(raw if isinstance(raw, str) else raw[-1])
                if wanted < 0:
                    raise ValueError
            except ValueError:
                raise ApiError(
                    400,
                    "invalid_request",
                    "min_seq must be a journal seq (an integer >= 0)",
                    [{"field": "min_seq", "message": "expected an integer >= 0"}],
                ) from None
            if self._head() < wanted and not self._wait(wanted):
                raise ApiError(
                    503,
                    "replica_behind",
                    f"this server has journal seq {self._head()}, not yet {wanted}; retry, "
                    "or read from the primary",
                    headers={"Retry-After": "1"},
                )
        req.context.journal_seq = self._head()

    def _wait(self, seq: int) -> bool:
        wait_for = getattr(self.store, "wait_for", None)
        if wait_for is not None:
            return bool(wait_for(seq, self.max_wait_s))
        deadline = time.monotonic() + self.max_wait_s  # a primary: the writer moves on
        while time.monotonic() < deadline:
            if self._head() >= seq:
                return True
            time.sleep(0.005)
        return self._head() >= seq

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        seq = getattr(req.context, "journal_seq", None)
        resp.set_header("X-StemeDB-Seq", str(seq if seq is not None else self._head()))
        media = resp.media if resp.status_code == 503 else None
        if isinstance(media, dict) and media.get("error", {}).get("code") == "not_primary":
            resp.status = falcon.HTTP_421
