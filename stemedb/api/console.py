"""The web console at `/console`: static HTML, CSS and vanilla JS modules (no build step).

The page reads everything through the public HTTP API (with the API key the
user gives it when auth is on), so it can show no more than that key may see.
Assets live in `stemedb/api/static/console/`; only files there are served, by
exact name, under the same strict CSP as `/docs` (self-hosted script and style
only). Also wires the two reads the console needs that no other endpoint answers
fast enough: the triage index (stemedb.service.triage) and value-text search
across subjects (stemedb.service.value_search).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import falcon
from pydantic import BaseModel

from stemedb.api.errors import ErrorResponse
from stemedb.api.resources import triage as triage_resource
from stemedb.api.resources import value_search as value_search_resource
from stemedb.api.routing import Route
from stemedb.service.triage import TriageService
from stemedb.service.value_search import ValueSearch
from stemedb.store import Store

TYPES = {
    ".html": falcon.MEDIA_HTML,
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


class ConsoleSessionOut(BaseModel):
    """What the console may offer: auth on or off, the key's role, whether /metrics exists."""

    auth: bool
    role: str
    key_id: str | None
    scope: str | None = None
    metrics: bool


def _dir() -> Any:
    return resources.files("stemedb.api").joinpath("static", "console")


def asset_names() -> dict[str, str]:
    """Servable file name -> content type (what ships in the package, nothing else)."""
    out: dict[str, str] = {}
    for entry in _dir().iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in TYPES:
            out[entry.name] = TYPES[suffix]
    return out


def console_routes(store: Store) -> list[Route]:
    """The page, its assets, the session probe, GET /v1/triage and /v1/concepts/search."""
    names = asset_names()

    triage = TriageService(store)  # folded lazily: see TriageService.start

    def page(req: falcon.Request, resp: falcon.Response) -> None:
        triage.start()  # someone opened the console: have triage ready when they get there
        resp.content_type = falcon.MEDIA_HTML
        resp.set_header("Cache-Control", "no-cache")
        resp.data = _dir().joinpath("index.html").read_bytes()

    def asset(req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if name not in names:
            raise falcon.HTTPNotFound(description=f"no such console asset: {name[:64]}")
        resp.content_type = names[name]
        resp.set_header("Cache-Control", "no-cache")
        resp.data = _dir().joinpath(name).read_bytes()

    def session(req: falcon.Request, resp: falcon.Response) -> None:
        # Which views to offer: the role of the key that reached this (auth off: every
        # caller may do everything, as the API itself allows).
        key = getattr(req.context, "api_key", None)
        body: dict[str, Any] = (
            {"auth": False, "role": "admin", "key_id": None}
            if key is None
            else {"auth": True, "role": key.role, "key_id": key.id, "scope": key.scope}
        )
        body["metrics"] = bool(getattr(store.settings, "meter_enabled", False))  # /metrics served
        resp.media = body

    common: dict[str, Any] = {"tag": "meta", "auth": "public", "response_media_type": "text/html"}
    return [
        Route("GET", "/console", page, "Web console (HTML)", **common),
        Route(
            "GET",
            "/console/{name}",
            asset,
            "Web console assets",
            responses={200: None, 404: None},
            **{**common, "response_media_type": "text/plain"},
        ),
        Route(
            "GET",
            "/v1/console/session",
            session,
            "The role of the presented API key (what the console may offer)",
            tag="meta",
            auth="read",
            responses={200: ConsoleSessionOut, 401: ErrorResponse},
        ),
        *triage_resource.routes(triage),
        *value_search_resource.routes(ValueSearch(store)),
    ]
