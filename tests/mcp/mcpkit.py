"""Drive `stemedb mcp` with the MCP SDK's own client, as an MCP host would.

`stdio_params` spawns the real command (`stemedb mcp --url ... --key ...`) as
a subprocess; `run` runs one async session function to completion;
`call` returns a tool's answer as (is_error, data) where data is the
structured answer or, for an error, the text the model would read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
from mcp import Client as McpClient
from mcp import StdioServerParameters

STEMEDB = Path(sys.executable).with_name("stemedb")
TOOLS = {
    "query",
    "skeptic",
    "layered",
    "trace",
    "search_concepts",
    "explain",
    "agent",
    "check_constraints",
    "assert_claim",
    "vote",
    "supersede",
}
T = TypeVar("T")


def stdio_params(
    url: str, key: Path | None = None, extra: Sequence[str] = ()
) -> StdioServerParameters:
    args = ["mcp", "--url", url, "--timeout", "10", *extra]
    if key is not None:
        args += ["--key", str(key)]
    # No key from the environment: only --key may give the MCP server an identity.
    return StdioServerParameters(
        command=str(STEMEDB), args=args, env={"STEMEDB_KEY_FILE": "", "STEMEDB_API_KEY": ""}
    )


def run(session: Callable[[McpClient], Awaitable[T]], server: Any, timeout: float = 90) -> T:
    """Open an MCP session to `server` (stdio params or an http URL) and run `session` in it."""

    async def main() -> T:
        with anyio.fail_after(timeout):
            async with McpClient(server) as client:
                return await session(client)

    return anyio.run(main)


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def call(client: McpClient, tool: str, arguments: dict[str, Any]) -> tuple[bool, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        return True, text_of(result)
    if result.structured_content is not None:
        data = result.structured_content
        return False, data.get("result", data) if set(data) == {"result"} else data
    return False, json.loads(text_of(result))
