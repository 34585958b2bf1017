"""`create_app`: the Falcon application from a route table.

Everything HTTP-generic lives here (media handlers, the error shape,
middleware, `/openapi.json`, `/docs`, `/metrics`); the endpoints themselves
arrive as `Route`s so this module knows nothing about assertions or lenses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import falcon

from stemedb import __version__
from stemedb.admission import Admission
from stemedb.api import errors
from stemedb.api.docs_page import docs_routes
from stemedb.api.media import media_handlers
from stemedb.api.middleware import (
    CORSMiddleware,
    MetricsMiddleware,
    RequestGuardMiddleware,
    RequestIdMiddleware,
    RouteContextMiddleware,
    SecurityHeadersMiddleware,
)
from stemedb.api.openapi import build_openapi
from stemedb.api.routing import Route, mount
from stemedb.config import Settings
from stemedb.metrics import CONTENT_TYPE, Metrics


def metrics_route(metrics: Metrics) -> Route:
    def on_metrics(req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE
        resp.data = metrics.render()

    return Route(
        "GET",
        "/metrics",
        on_metrics,
        "Prometheus metrics (text exposition format)",
        tag="operations",
        auth="public",
        response_media_type="text/plain",
        # Rendering is CPU only (store gauges are in memory or one stat()), and a
        # scrape must still answer when every worker thread is held: that is when
        # an operator needs the numbers.
        inline=True,
    )


def create_app(
    settings: Settings,
    routes: Sequence[Route],
    metrics: Metrics,
    *,
    extra_middleware: Iterable[Any] = (),
) -> falcon.App[falcon.Request, falcon.Response]:
    """Mount `routes` plus /openapi.json, /docs and (when metering) /metrics.

    `extra_middleware` (auth, rate limits, ...) runs after request id, metrics,
    security headers and CORS, and before the body-size/media-type guard, so
    it can read `req.context.request_id` and `req.context.route`.
    """
    all_routes = list(routes)
    if settings.meter_enabled:
        all_routes.append(metrics_route(metrics))
    spec: dict[str, Any] = {}
    all_routes += docs_routes(lambda: spec)
    spec.update(build_openapi(all_routes, __version__))  # eager: a bad model fails at start

    app = falcon.App(
        middleware=[
            RequestIdMiddleware(),
            RouteContextMiddleware(),
            MetricsMiddleware(metrics),
            SecurityHeadersMiddleware(),
            CORSMiddleware(settings.allowed_origins),
            *extra_middleware,
            RequestGuardMiddleware(settings.max_body_bytes),
        ],
    )
    app.req_options.media_handlers = media_handlers()
    app.resp_options.media_handlers = media_handlers()
    errors.install(app)
    mount(app, all_routes)
    return app


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def admitted(app: WSGIApp, admission: Admission) -> WSGIApp:
    """The app behind FIFO admission (stemedb.admission): the handler runs holding a
    slot; a streamed body (export) is iterated by waitress after the slot is freed."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with admission.admit():
            return app(environ, start_response)

    return wsgi
