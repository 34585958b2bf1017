"""`stemedb agent [AGENT_ID]`: public agent profiles, over HTTP (read role).

With an id: that agent's trust now (relaxed to the reading instant, as the
`trust` lens weighs it), its outcome history, how much it signed, when it
was first seen. Without: every agent by trust, highest first. The admin tier
registry is `stemedb agents` (stemedb/cli/agents.py); this is what anyone
with read access may look up (GET /v1/agents, docs/agents.md).
"""

from __future__ import annotations

import argparse
from typing import Any

from stemedb.cli.output import emit
from stemedb.cli.remote import (
    EXIT_USAGE,
    CliError,
    make_client,
    remote_command,
    time_params,
)

LIST_COLUMNS = ("agent_id", "trust", "rated", "first_seen_seq")
HISTORY_COLUMNS = ("seq", "accurate", "timestamp", "score_after", "assertion_hash")


def _agent_id(text: str) -> str:
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise CliError(f"expected an agent id (64 hex characters), got {text!r}", EXIT_USAGE)
    return text.lower()


def _short(row: dict[str, Any], field: str) -> dict[str, Any]:
    value = row.get(field)
    return {**row, field: f"{value[:16]}…" if isinstance(value, str) else value}


def run(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=False)
    times = time_params(args)
    if args.agent_id is None:
        agents = list(client.agents_all(limit=min(args.limit, 500), **times))[: args.limit]
        rows = [{**a, "trust": round(float(a.get("trust", 0.5)), 4)} for a in agents]
        emit(args.format, agents, rows, columns=LIST_COLUMNS)
        return 0
    profile = client.agent(_agent_id(args.agent_id), history_limit=args.history, **times)
    history = profile.get("history", [])
    title = (
        f"agent {profile['agent_id']}  trust {float(profile['trust']):.4f}  "
        f"counts {profile.get('counts')}"
    )
    emit(
        args.format,
        profile,
        history,
        columns=HISTORY_COLUMNS,
        title=title,
        view=lambda o: _short(dict(o), "assertion_hash"),  # ndjson keeps full hashes
    )
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="look up an agent: trust now, outcome history, counts (or list agents by trust)",
        description="With AGENT_ID: GET /v1/agents/{id} (trust relaxed to now, outcome "
        "history, claims/co-signatures/votes counts, first seen). Without: GET /v1/agents, "
        "agents by trust, highest first.",
    )
    parser.add_argument("agent_id", nargs="?", default=None, help="the agent's public key (64 hex)")
    parser.add_argument("--as-of", default=None, help="relax trust to this time (seconds or ISO)")
    parser.add_argument("--known-at", default=None, help="only what the server had by then")
    parser.add_argument("--history", type=int, default=100, help="newest outcomes to show")
    parser.add_argument("--limit", type=int, default=100, help="agents to list (no AGENT_ID)")
    remote_command(parser, "agent", run, key=False)
