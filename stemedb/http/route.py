"""What an endpoint is: a `Route`, and the route of the request being served.

Shared by the API (which mounts routes on Falcon and documents them) and the
security layer (which reads a route's role, body limit and media types), so
neither has to import the other's modules for it. Pure data plus Falcon's
request type: no waitress, no store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import falcon
from pydantic import BaseModel

AUTH_LEVELS = ("public", "read", "write", "admin")
Handler = Callable[..., None]

_FIELD = re.compile(r"{(\w+)(?::[^}]*)?}")


@dataclass(frozen=True)
class Route:
    """One endpoint: `handler(req, resp, **path_params)` plus what the docs need to know.

    `auth` is the role the security layer requires ("public" needs none).
    `content_types` are the request media types accepted for a body;
    `body_limit_factor` multiplies STEMEDB_MAX_BODY_BYTES (the batch route uses 32).
    `response_media_type` is what a 2xx answers with (e.g. text/plain for /metrics).
    `inline`: a quick read that never blocks, served on the event loop (stemedb.http.dispatch).
    `urgent`: an inline route answered before the other inline requests of a loop
    turn and never behind a large answer (health, ready: a probe must not time out).
    """

    method: str
    template: str
    handler: Handler
    summary: str = ""
    tag: str = "default"
    request_model: type[BaseModel] | None = None
    query_model: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=lambda: {200: None})
    auth: str = "read"
    content_types: tuple[str, ...] = ("application/json",)
    streaming: bool = False
    body_limit_factor: int = 1
    response_media_type: str = "application/json"
    description: str = ""
    operation_id: str | None = None
    inline: bool = False
    urgent: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        if self.auth not in AUTH_LEVELS:
            raise ValueError(f"{self.method} {self.template}: auth must be one of {AUTH_LEVELS}")
        if not self.template.startswith("/"):
            raise ValueError(f"route template must start with '/': {self.template!r}")

    @property
    def path_params(self) -> list[str]:
        return _FIELD.findall(self.template)

    @property
    def openapi_path(self) -> str:
        """`/v1/aliases/{path:path}` -> `/v1/aliases/{path}`."""
        return _FIELD.sub(r"{\1}", self.template)

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


class InlineRoutes:
    """(method, path) -> is it one of the `inline` routes (HEAD as its GET);
    `urgent(path)`: is it an `urgent` one (those have no path fields)."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._patterns: dict[str, list[re.Pattern[str]]] = {}
        urgent: set[str] = set()
        for route in routes:
            if route.inline:
                regex = re.compile(_template_regex(route.template))
                self._patterns.setdefault(route.method, []).append(regex)
                if route.method == "GET":
                    self._patterns.setdefault("HEAD", []).append(regex)
                if route.urgent:
                    if route.path_params:
                        raise ValueError(f"{route.key}: an urgent route takes no path fields")
                    urgent.add(route.template)
        self.urgent_paths = frozenset(urgent)

    def __call__(self, method: str, path: str) -> bool:
        return any(p.fullmatch(path) for p in self._patterns.get(method, ()))

    def urgent(self, path: str) -> bool:
        return path in self.urgent_paths


def inline_matcher(routes: Sequence[Route]) -> InlineRoutes:
    """The inline routes of `routes` as a (method, path) predicate (see InlineRoutes)."""
    return InlineRoutes(routes)


def _template_regex(template: str) -> str:
    """`/v1/assertions/{hash}` -> `/v1/assertions/[^/]+` (`{x:path}` spans slashes)."""
    out, last = [], 0
    for field_match in _FIELD.finditer(template):
        out.append(re.escape(template[last : field_match.start()]))
        out.append(".+" if ":path" in field_match.group(0) else "[^/]+")
        last = field_match.end()
    out.append(re.escape(template[last:]))
    return "".join(out)


def current_route(req: falcon.Request) -> Route | None:
    """The Route set on `req.context.route` by the routing middleware, if any."""
    route = getattr(req.context, "route", None)
    return route if isinstance(route, Route) else None
