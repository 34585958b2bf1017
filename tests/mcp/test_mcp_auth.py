"""With auth on, `stemedb mcp` acts with its configured API key and inherits its role.

No key: every tool is a 401 tool error. A reader key: read tools (and the public
agent profile) work, write tools are a 403 tool error with the server's
reason. A writer key plus --key: the signed write goes through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import ServerFactory
from e2ekit import unique
from mcp import Client as McpClient
from mcpkit import call, run, stdio_params

from stemedb.client import Client
from stemedb.crypto import generate_signing_key, public_key_hex, write_key_file

ROOT = "root-mcp-key-0123456789abcdef0123456789abcdef01"
ENV = {
    "STEMEDB_AUTH_ENABLED": "true",
    "STEMEDB_ROOT_API_KEY": ROOT,
    "STEMEDB_RATE_LIMIT_READ": "0",
    "STEMEDB_RATE_LIMIT_WRITE": "0",
    "STEMEDB_NEW_AGENTS_PER_HOUR": "0",
}


def test_the_mcp_server_has_exactly_its_api_keys_role(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    srv = server_factory(ENV)
    root = Client(srv.url, api_key=ROOT)
    reader = root.admin_keys_create("reader", name="mcp reader")["api_key"]
    writer = root.admin_keys_create("writer", name="mcp writer")["api_key"]
    seed = generate_signing_key()
    key = write_key_file(tmp_path / "key", seed)
    subject = f"auth/{unique()}"
    claim = {"subject": subject, "predicate": "p", "object": "v", "confidence": 0.7}
    pair = {"subject": subject, "predicate": "p"}

    async def session(client: McpClient) -> list[tuple[bool, Any]]:
        return [
            await call(client, "skeptic", pair),
            await call(client, "assert_claim", claim),
            await call(client, "agent", {}),
        ]

    anonymous = run(session, stdio_params(srv.url, key))
    assert all(error and "StemeDB server: 401" in text for error, text in anonymous)

    read, write, agents = run(session, stdio_params(srv.url, key, ["--api-key", reader]))
    assert read[0] is False and read[1]["status"] == "NoClaims"
    assert write[0] and "StemeDB server: 403" in write[1]
    assert agents[0] is False and agents[1]["count"] == 0  # nothing signed yet

    read, write, agents = run(session, stdio_params(srv.url, key, ["--api-key", writer]))
    assert write[0] is False and write[1]["status"] == "created"
    assert [a["agent_id"] for a in agents[1]["agents"]] == [public_key_hex(seed)]
    assert root.skeptic(subject, "p")["status"] == "Unanimous"
