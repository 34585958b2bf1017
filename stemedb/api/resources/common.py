"""Small helpers shared by the endpoint handlers."""

from __future__ import annotations

import re
from typing import Any

import falcon

from stemedb.errors import InvalidRequest

_AGENT = re.compile(r"^[0-9a-fA-F]{64}$")


def agent_header(req: falcon.Request) -> str | None:
    """`X-Agent-Id` (64 hex) for audit and quota attribution."""
    value = req.get_header("X-Agent-Id")
    if value is None:
        return None
    if not _AGENT.match(value):
        raise InvalidRequest.field(
            "X-Agent-Id", "must be 64 hex characters (an Ed25519 public key)"
        )
    return value.lower()


def query_or_body(req: falcon.Request) -> dict[str, Any]:
    """GET parameters or a POST JSON body, as one mapping for the same model."""
    if req.method == "POST":
        media = req.get_media()
        if not isinstance(media, dict):
            raise InvalidRequest.field("(root)", "expected a JSON object")
        return media
    return dict(req.params)


def json_response(resp: falcon.Response, body: Any, status: int = 200) -> None:
    resp.status = falcon.code_to_http_status(status)
    resp.media = body
