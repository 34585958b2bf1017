"""`/openapi.json` and the self-contained `/docs` browser (no CDN, nothing fetched).

The page is a small vanilla-JS renderer shipped in `stemedb/api/static/`; it
reads `/openapi.json` from this same server, which the CSP allows and nothing
else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import falcon

from stemedb.api.routing import Route

ASSETS = {
    "docs.js": "text/javascript; charset=utf-8",
    "docs.css": "text/css; charset=utf-8",
}


def _asset(name: str) -> bytes:
    return resources.files("stemedb.api").joinpath("static", name).read_bytes()


def docs_routes(spec_fn: Callable[[], dict[str, Any]]) -> list[Route]:
    """Routes for the document and the page; `spec_fn()` returns the OpenAPI dict.

    A callable because the document also describes these routes themselves.
    """
    cached: dict[str, bytes] = {}

    def openapi_json(req: falcon.Request, resp: falcon.Response) -> None:
        if "spec" not in cached:
            cached["spec"] = json.dumps(spec_fn(), ensure_ascii=False, indent=1).encode()
        resp.content_type = falcon.MEDIA_JSON
        resp.data = cached["spec"]

    def docs_page(req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.data = _asset("docs.html")

    def docs_asset(req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if name not in ASSETS:
            raise falcon.HTTPNotFound(description=f"no such asset: {name[:64]}")
        resp.content_type = ASSETS[name]
        resp.data = _asset(name)

    common: dict[str, Any] = {"tag": "meta", "auth": "public"}
    return [
        Route("GET", "/openapi.json", openapi_json, "This OpenAPI 3.1 document", **common),
        Route(
            "GET",
            "/docs",
            docs_page,
            "API browser (HTML)",
            response_media_type="text/html",
            **common,
        ),
        Route(
            "GET",
            "/docs/{name}",
            docs_asset,
            "API browser assets",
            responses={200: None, 404: None},
            response_media_type="text/plain",
            **common,
        ),
    ]
