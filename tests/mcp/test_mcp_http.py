"""`stemedb mcp --http HOST:PORT`: the same tools over streamable HTTP, once.

Also the command's own failures: a malformed --http and a missing key file
end in one line on stderr, not a traceback.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerFactory
from e2ekit import poll, unique
from mcp import Client as McpClient
from mcpkit import STEMEDB, TOOLS, call, run

from stemedb.cli.main import main as cli_main
from stemedb.crypto import generate_signing_key, public_key_hex, write_key_file


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_streamable_http_serves_the_tools(
    server_factory: ServerFactory, free_port: int, tmp_path: Path
) -> None:
    srv = server_factory()
    seed = generate_signing_key()
    key = write_key_file(tmp_path / "key", seed)
    argv = [str(STEMEDB), "mcp", "--url", srv.url, "--key", str(key)]
    argv += ["--http", f"127.0.0.1:{free_port}"]
    log = (tmp_path / "mcp-http.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        poll(lambda: _listening(free_port) or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, (tmp_path / "mcp-http.log").read_text()
        subject = f"http/{unique()}"

        async def session(client: McpClient) -> Any:
            tools = {t.name for t in (await client.list_tools()).tools}
            claim = {"subject": subject, "predicate": "p", "object": 7, "confidence": 0.8}
            wrote = await call(client, "assert_claim", claim)
            read = await call(client, "query", {"subject": subject, "lens": "recency"})
            return tools, wrote, read

        tools, wrote, read = run(session, f"http://127.0.0.1:{free_port}/mcp")
        assert tools == TOOLS
        assert wrote[0] is False and wrote[1]["status"] == "created"
        winner = read[1]["results"][0]["winner"]
        assert winner["hash"] == wrote[1]["record_id"]
        assert winner["agent_id"] == public_key_hex(seed)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_command_line_mistakes_are_one_line(tmp_path: Path) -> None:
    bad_http = subprocess.run(
        [str(STEMEDB), "mcp", "--http", "nowhere"], capture_output=True, text=True, timeout=60
    )
    assert bad_http.returncode == 2
    assert bad_http.stderr.strip().splitlines() == [
        "stemedb mcp: --http: expected HOST:PORT like 127.0.0.1:8765, got 'nowhere' "
        "(docs/agents.md, Troubleshooting)"
    ]
    missing = subprocess.run(
        [str(STEMEDB), "mcp", "--key", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert missing.returncode == 1
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stemedb mcp: --key:") and "absent" in lines[0]
    assert lines[0].endswith("(docs/agents.md, Troubleshooting)")


def test_without_the_sdk_the_command_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server packages do not ship the MCP SDK: one line, not a traceback."""
    for name in [m for m in sys.modules if m == "mcp" or m.startswith(("mcp.", "stemedb.mcp"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mcp", None)  # import mcp -> ImportError
    assert cli_main(["mcp"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "stemedb mcp: the MCP SDK (package mcp) is not installed: pip install 'stemedb[mcp]' "
        "(docs/agents.md, Install)"
    ]
