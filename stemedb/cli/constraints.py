"""`stemedb constraints CONTEXT`: the rules in force in a context, or a check of an action.

Without `--uses` / `--does` it lists the rules in force in CONTEXT (its
ancestors' rules included) with who set each and why, and any conflicts
(`GET /v1/constraints`). With them it checks that intended action
(`POST /v1/constraints/check`) and exits 1 when the action violates a rule,
so a script or an agent's shell step can stop before it acts. A rule is an
ordinary assertion: `stemedb` writes one like any claim, e.g. subject
`code/python/http`, predicate `must_use`, object `"httpx"`, source the reason.
"""

from __future__ import annotations

import argparse
from typing import Any

from stemedb.cli.output import emit
from stemedb.cli.remote import EXIT_FAILURE, make_client, remote_command

RULE_COLUMNS = ("predicate", "value", "context", "tier", "set_by", "why", "status")


def _items(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _row(rule: dict[str, Any], status: str = "in force") -> dict[str, Any]:
    row = {column: rule.get(column) for column in RULE_COLUMNS}
    by = row["set_by"]
    row["set_by"] = f"{by[:16]}…" if isinstance(by, str) else by
    row["status"] = "overridden" if rule.get("overridden_by") else status
    return row


def run(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=False)
    times = {"as_of": args.as_of, "known_at": args.known_at}
    uses, does = _items(args.uses), _items(args.does)
    if not uses and not does:
        body = client.constraints(args.context, **times)
        emit(args.format, body, [_row(r) for r in body["rules"]], columns=RULE_COLUMNS)
        return 0
    answer = client.check_constraints(args.context, uses=uses, does=does, **times)
    rows = [_row(v["rule"], "VIOLATED") for v in answer["violations"]]
    rows += [_row(a["rule"], "advice") for a in answer["advice"]]
    emit(args.format, answer, rows, columns=RULE_COLUMNS)
    return 0 if answer["ok"] else EXIT_FAILURE


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "constraints",
        help="the rules in force in a context, or check an intended action against them",
        description="Rules are assertions with a predicate of must_use, must_not_use, "
        "requires, prefer, avoid under a context path; the rules of every ancestor context "
        "apply too. With --uses/--does, checks that action and exits 1 on a violation.",
    )
    parser.add_argument("context", help="concept path, e.g. code/python/http")
    parser.add_argument("--uses", default=None, help="comma list: what the action will use")
    parser.add_argument("--does", default=None, help="comma list: what the action does")
    parser.add_argument("--as-of", type=int, default=None, help="rules claimed by then (Unix s)")
    parser.add_argument(
        "--known-at", type=int, default=None, help="rules the journal had by then (Unix s)"
    )
    remote_command(parser, "constraints", run, key=False)
