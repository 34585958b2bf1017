"""`stemedb agents register|list|show`: the agent tier registry, over HTTP (admin key).

A registration is a signed `agent_tier` record, so `register` signs it with
the key file (`--key`, the admin's own signing key) and sends it with the
admin API key. Lenses then let that agent's claims rank up to `--tier`;
claims above what their signers are registered for are capped at read time
(docs/security.md, "Authority cannot be self-declared").
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from typing import Any

from stemedb.cli.output import emit
from stemedb.cli.remote import EXIT_USAGE, CliError, make_client, remote_command

AGENT_COLUMNS = ("agent_id", "max_tier", "name", "registered_by", "seq")
TIERS = ("Regulatory", "Clinical", "Observational", "Expert", "Community", "Anecdotal")
_AGENT_ID = re.compile(r"^[0-9a-fA-F]{64}$")


def _agent_id(text: str) -> str:
    if not _AGENT_ID.match(text):
        raise CliError(
            f"expected an agent id (64 hex characters, an Ed25519 public key), got {text!r}",
            EXIT_USAGE,
        )
    return text.lower()


def _row(agent: Mapping[str, Any]) -> dict[str, Any]:
    row = {column: agent.get(column) for column in AGENT_COLUMNS}
    by = row["registered_by"]
    row["registered_by"] = f"{by[:16]}…" if isinstance(by, str) else by
    return row


def run_register(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=True)
    answer = client.admin_agents_register(
        _agent_id(args.agent_id), args.tier, name=args.name, note=args.note
    )
    emit(args.format, {**answer, "agent_id": args.agent_id.lower(), "max_tier": args.tier})
    return 0


def run_list(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=False)
    agents = client.admin_agents_list()
    emit(args.format, agents, agents, columns=AGENT_COLUMNS, view=_row)
    return 0


def run_show(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=False)
    detail = client.admin_agent(_agent_id(args.agent_id))
    history = detail["history"]
    emit(args.format, detail, history, columns=AGENT_COLUMNS, view=_row)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "agents",
        help="register signing agents for a maximum authority tier (admin)",
        description="The agent tier registry. Lenses rank a claim at most at the tier its "
        "signers are registered for; unregistered agents reach at most "
        "STEMEDB_UNREGISTERED_MAX_TIER (default Observational).",
    )
    commands = parser.add_subparsers(dest="agents_command", metavar="ACTION", required=True)

    reg = commands.add_parser(
        "register",
        help="register (or re-register) an agent for a maximum tier",
        description="Sign an agent_tier record with --key and send it with an admin API key. "
        "A later registration of the same agent replaces the earlier one.",
    )
    reg.add_argument("agent_id", help="the agent's public key (64 hex)")
    reg.add_argument("--tier", required=True, choices=TIERS, help="the best tier it may claim")
    reg.add_argument("--name", default=None, help="who the agent is, e.g. 'FDA label feed'")
    reg.add_argument("--note", default=None, help="why it is trusted at this tier")
    remote_command(reg, "agents register", run_register)

    listing = commands.add_parser("list", help="registrations in force")
    remote_command(listing, "agents list", run_list, key=False)

    show = commands.add_parser("show", help="one agent's registration history")
    show.add_argument("agent_id", help="the agent's public key (64 hex)")
    remote_command(show, "agents show", run_show, key=False)
