"""Assemble the MCP server (tools and resources) and run it over stdio or streamable HTTP.

The MCP server holds no data: every tool and resource calls a StemeDB server
through `stemedb.client.Client`, with the API key it was started with (so it
has exactly that key's role) and, for writes, the agent key it signs with.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.types import ToolAnnotations

from stemedb import __version__
from stemedb.client import ApiError, Client
from stemedb.mcp.tools import READ_TOOLS, WRITE_TOOLS, StemeTools

INSTRUCTIONS = (
    "StemeDB stores signed, possibly conflicting claims (subject path, predicate, value) "
    "and resolves them at read time through lenses. Find a subject with search_concepts, "
    "read it with query (pick a lens) or skeptic (how contested), ask explain why a lens "
    "chose its winner, and check who said it with agent. assert_claim, vote and supersede "
    "write records signed with this server's agent key."
)
MIME_JSON = "application/json"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def build_server(client: Client, *, name: str = "stemedb") -> MCPServer[Any]:
    """An MCP server whose tools and resources read and write through `client`."""
    server: MCPServer[Any] = MCPServer(
        name, instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )
    tools = StemeTools(client)
    for tool in READ_TOOLS:
        server.add_tool(
            getattr(tools, tool),
            name=tool,
            annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
        )
    for tool in WRITE_TOOLS:
        server.add_tool(
            getattr(tools, tool),
            name=tool,
            annotations=ToolAnnotations(
                read_only_hint=False,
                destructive_hint=False,  # records are appended, never changed or deleted
                idempotent_hint=tool != "supersede",
                open_world_hint=False,
            ),
        )

    def fetch(what: str, call: Any, *args: Any) -> str:
        try:
            return _json(call(*args))
        except ApiError as exc:
            raise ResourceError(f"StemeDB server: {exc} ({what})") from None

    @server.resource(
        "stemedb://concepts",
        name="concept-roots",
        description="Top-level concept segments with assertion counts",
        mime_type=MIME_JSON,
    )
    def concept_roots() -> str:
        return fetch("concept roots", client.concepts, None)

    @server.resource(
        "stemedb://concepts/{+prefix}",
        name="concepts",
        description="Child segments of a concept path with assertion counts",
        mime_type=MIME_JSON,
    )
    def concepts(prefix: str) -> str:
        return fetch(f"concepts under {prefix}", client.concepts, prefix)

    @server.resource(
        "stemedb://records/{hash}",
        name="record",
        description="One assertion by id (its 64-hex hash), with server fields",
        mime_type=MIME_JSON,
    )
    def record(hash: str) -> str:
        return fetch(f"record {hash}", client.assertion, hash)

    return server


def run(client: Client, http: tuple[str, int] | None = None) -> None:
    """Serve until the client disconnects (stdio) or the process is stopped (HTTP)."""
    server = build_server(client)
    if http is None:
        server.run("stdio")
    else:
        host, port = http
        server.run("streamable-http", host=host, port=port)
