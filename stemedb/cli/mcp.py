"""`stemedb mcp`: run the MCP server (stdio by default, streamable HTTP with --http).

Talks to a StemeDB server through the Python client (`--url`, `--api-key`),
so it works against a remote server and inherits its API key's role. Writing
tools sign with `--key` (or STEMEDB_KEY_FILE) and refuse without one; the
default key file is deliberately not picked up, so an MCP client never writes
under an identity nobody configured for it. docs/agents.md has the client
configuration.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from stemedb.cli.remote import EXIT_USAGE, CliError, add_remote_options, guarded, server_url
from stemedb.client import Client
from stemedb.crypto import KeyFileError

_HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[^:]+):(?P<port>\d{1,5})$")


def parse_http(text: str) -> tuple[str, int]:
    match = _HOST_PORT.match(text)
    port = int(match.group("port")) if match else 0
    if match is None or not 0 < port < 65536:
        raise CliError(
            f"--http: expected HOST:PORT like 127.0.0.1:8765, got {text!r} "
            "(docs/agents.md, Troubleshooting)",
            EXIT_USAGE,
        )
    return match.group("host").strip("[]"), port


def run(args: argparse.Namespace) -> int:
    try:
        from stemedb.mcp.server import run as serve
    except ImportError:
        raise CliError(
            "the MCP SDK (package mcp) is not installed: pip install 'stemedb[mcp]' "
            "(docs/agents.md, Install)"
        ) from None
    http = parse_http(args.http) if args.http else None
    key = args.key or os.environ.get("STEMEDB_KEY_FILE") or None
    try:
        client = Client(
            server_url(args),
            key_file=Path(key).expanduser() if key else None,
            api_key=args.api_key,
            timeout=args.timeout,
            retries=1,
        )
    except KeyFileError as exc:
        raise CliError(f"--key: {exc} (docs/agents.md, Troubleshooting)") from None
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    serve(client, http)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "mcp",
        help="run a Model Context Protocol server for AI agents (stdio, or HTTP with --http)",
        description="An MCP server in front of a StemeDB server: tools query, skeptic, "
        "layered, trace, search_concepts, explain, agent, assert_claim, vote, supersede; "
        "resources stemedb://concepts/{prefix} and stemedb://records/{hash}. Writes are "
        "signed with --key and refused without one. See docs/agents.md.",
    )
    parser.add_argument(
        "--http",
        default=None,
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio",
    )
    server = add_remote_options(parser, key=False)
    server.add_argument(  # not the shared --key: no default key file (see the docstring)
        "--key", default=None, help="agent key file to sign writes (env STEMEDB_KEY_FILE)"
    )
    parser.set_defaults(func=guarded("mcp", run))
