"""Declarative routes: one table feeds both Falcon's router and the OpenAPI document.

A `Route` says what an endpoint accepts and answers (pydantic models), who
may call it, and which function serves it. Routes sharing a template become
one Falcon resource whose `on_<method>` attributes dispatch to the handlers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import falcon

# The route description lives in stemedb.http.route (the security layer uses it too).
from stemedb.http.route import AUTH_LEVELS as AUTH_LEVELS
from stemedb.http.route import Handler as Handler
from stemedb.http.route import Route as Route
from stemedb.http.route import current_route as current_route
from stemedb.http.route import inline_matcher as inline_matcher


class RouteResource:
    """All routes of one URI template; Falcon finds `on_get`, `on_post`, ... on it."""

    def __init__(self, template: str, routes: Sequence[Route]) -> None:
        self.template = template
        self.routes: dict[str, Route] = {}
        for route in routes:
            if route.method in self.routes:
                raise ValueError(f"duplicate route {route.key}")
            self.routes[route.method] = route
            setattr(self, f"on_{route.method.lower()}", route.handler)
        if "GET" in self.routes and "HEAD" not in self.routes:
            # HEAD for monitoring tools: Falcon runs the GET handler and drops the body.
            self.routes["HEAD"] = self.routes["GET"]
            self.on_head = self.routes["GET"].handler

    def __repr__(self) -> str:
        return f"RouteResource({self.template!r}, {sorted(self.routes)})"


def group_by_template(routes: Sequence[Route]) -> dict[str, list[Route]]:
    grouped: dict[str, list[Route]] = {}
    for route in routes:
        grouped.setdefault(route.template, []).append(route)
    return grouped


def mount(
    app: falcon.App[falcon.Request, falcon.Response], routes: Sequence[Route]
) -> list[RouteResource]:
    resources = [RouteResource(t, rs) for t, rs in group_by_template(routes).items()]
    for resource in resources:
        app.add_route(resource.template, resource)
    return resources


def route_for(req: falcon.Request, resource: Any) -> Route | None:
    """The Route serving this request, or None (unknown route or method)."""
    if isinstance(resource, RouteResource):
        return resource.routes.get(req.method)
    return None
