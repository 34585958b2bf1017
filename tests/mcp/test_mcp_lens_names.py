"""The MCP tools offer exactly the server's lenses, as the model sees them in the schema.

The enums in stemedb/mcp/tools.py are built from the lens registry at import time;
these tests read the JSON schema the SDK publishes (no server, no network), so they
fail if the derivation breaks or the SDK stops seeing the run-time Literal.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stemedb.client import Client
from stemedb.lenses.registry import LENS_NAMES, NOT_INNER
from stemedb.mcp.server import build_server


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    server = build_server(Client("http://127.0.0.1:9"))  # never called: listing is local
    tools = asyncio.run(server.list_tools())
    return {tool.name: tool.input_schema["properties"] for tool in tools}


def _enum(prop: dict[str, Any]) -> list[str]:
    """The enum of a property, also when it is optional (anyOf [enum, null])."""
    if "enum" in prop:
        return list(prop["enum"])
    (only,) = [p["enum"] for p in prop.get("anyOf", []) if "enum" in p]
    return list(only)


@pytest.mark.parametrize("tool", ["query", "explain"])
def test_every_lens_tool_offers_the_registry_in_its_order(
    schemas: dict[str, dict[str, Any]], tool: str
) -> None:
    assert _enum(schemas[tool]["lens"]) == list(LENS_NAMES)


def test_the_inner_lens_enum_is_every_lens_allowed_inside_epoch(
    schemas: dict[str, dict[str, Any]],
) -> None:
    expected = [name for name in LENS_NAMES if name not in NOT_INNER]
    assert _enum(schemas["query"]["inner"]) == expected
    assert "epoch" not in expected and "recency" in expected


def test_the_query_description_names_every_lens(schemas: dict[str, dict[str, Any]]) -> None:
    """The enum follows the registry by itself; the prose a model reads must keep up too."""
    description = schemas["query"]["lens"]["description"]
    missing = [name for name in LENS_NAMES if name not in description]
    assert not missing, f"describe these lenses in StemeTools.query: {missing}"
