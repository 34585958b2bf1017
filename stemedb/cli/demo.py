"""`stemedb demo`: load the signed Semaglutide sample so a newcomer can try every lens.

One batch request; every record is signed by one of four demo agents with
a fixed timestamp, so a second run writes nothing (all `exists`). Prints
what was loaded and the commands worth trying next.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping
from typing import Any

from stemedb import demo_data
from stemedb.cli.output import emit
from stemedb.cli.remote import CliError, make_client, remote_command, server_url
from stemedb.client import DEFAULT_URL


def next_commands(url: str, ids: dict[str, str]) -> list[str]:
    """Commands to try after loading, with `--url` spelled out when it is not the default."""
    flag = "" if url.rstrip("/") == DEFAULT_URL else f" --url {shlex.quote(url)}"
    subject, predicate = demo_data.SUBJECT, demo_data.PREDICATE
    pair = f"{subject} {predicate}"
    lens = f"stemedb query {subject} -p {predicate}{flag} --format table --lens"
    return [
        f"stemedb skeptic {pair}{flag} --format table",
        f"{lens} authority",
        f"{lens} recency",
        f"{lens} consensus",
        f"{lens} votes",
        f"{lens} layered",
        f"{lens} recency --as-of {demo_data.T + 1}",
        f"stemedb query ozempic -p {predicate}{flag} --format table --lens consensus",
        f"stemedb query {subject} -p label_gi_warning{flag} --format table --lens epoch",
        f"stemedb query {subject} -p max_weekly_dose_mg{flag} --format table --lens recency "
        "--lifecycle Approved",
        f"stemedb query {subject} -p max_weekly_dose_mg{flag} --format table --lens recency "
        "--include-superseded",
        f"curl -s {url.rstrip('/')}/v1/trace/{ids['Q']}",
    ]


UNREGISTERED_WARNING = (
    "stemedb demo: warning: the demo agents' tiers were not registered (agent_tier records "
    "need an admin key), so `authority` caps A's Regulatory and B's and D's Clinical claims "
    "to Observational; run `stemedb demo` again with an admin key to register them "
    '(docs/security.md, "Authority cannot be self-declared")'
)


def _needs_admin(data: demo_data.DemoData, item: Mapping[str, Any]) -> bool:
    """An agent_tier record refused for lack of the admin role: a warning, not a failure."""
    index = item.get("index")
    if not isinstance(index, int) or not 0 <= index < len(data.records):
        return False
    code = (item.get("error") or {}).get("code")
    return data.records[index].get("kind") == "agent_tier" and code == "forbidden"


def run_demo(args: argparse.Namespace) -> int:
    data = demo_data.build()
    client = make_client(args, need_key=False)
    answer = client.batch(data.records)
    rejected = [item for item in answer["results"] if item.get("status") == "rejected"]
    unregistered = [item for item in rejected if _needs_admin(data, item)]
    problems = [
        f"record {item.get('index')}: {item.get('error', {}).get('message')}"
        for item in rejected
        if item not in unregistered
    ]
    if problems:
        raise CliError("the server rejected demo records:\n  " + "\n  ".join(problems[:10]))
    if unregistered:
        print(UNREGISTERED_WARNING, file=sys.stderr)
    summary: dict[str, Any] = {
        "records": len(data.records),
        "created": answer["created"],
        "exists": answer["exists"],
        "subject": demo_data.SUBJECT,
        "agents": data.agents,
        "ids": data.ids,
        "next": next_commands(server_url(args), data.ids),
    }
    if args.format == "table":
        state = "loaded" if answer["created"] else "already loaded (nothing new written)"
        print(
            f"Semaglutide sample {state}: {len(data.records)} records, "
            f"{answer['created']} created, {answer['exists']} already present."
        )
        print("Four agents (A-D) disagree about drugs/semaglutide gastroparesis_risk. Try:\n")
        for command in summary["next"]:
            print(f"  {command}")
        return 0
    emit(args.format, summary)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="load the signed Semaglutide sample (safe to run twice)",
        description="Load acceptance battery 1 (four agents disagree about semaglutide and "
        "gastroparesis) plus aliases, votes, an epoch pair and a lineage, signed by four demo "
        "agents whose keys are derived from their names. Idempotent.",
    )
    remote_command(parser, "demo", run_demo, key=False)
