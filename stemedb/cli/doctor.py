"""`stemedb doctor`: the server-wont-start runbook's checks, with what to do for each."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from dataclasses import asdict
from typing import Any

from stemedb.cli.output import add_format_option, emit
from stemedb.ops import doctor

MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def render(findings: list[doctor.Finding]) -> str:
    width = max(len(f.check) for f in findings)
    lines = []
    for f in findings:
        lines.append(f"{MARK[f.status]:<4}  {f.check:<{width}}  {f.detail}")
        if f.action:
            indent = " " * (width + 8)
            lines.append(
                textwrap.fill(
                    f"-> {f.action}",
                    100,
                    initial_indent=indent,
                    subsequent_indent=indent + "   ",
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    lines.append("")
    lines.append(f"{failed} failed, {warned} warnings, {len(findings)} checks")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    settings, findings = doctor.settings_with_findings(os.environ)
    try:
        findings += doctor.diagnose(settings, expected_user=args.user)
    except KeyError:
        print(f"stemedb doctor: no such user {args.user!r}", file=sys.stderr)
        return 2
    if args.format == "table":  # the runbook's layout: status, check, detail, what to do
        print(render(findings))
    else:
        emit(args.format, doctor.to_json(findings), [asdict(f) for f in findings])
    return 1 if any(f.status == "fail" for f in findings) else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="diagnose why the server will not start (port, dirs, disk, journal, TLS, backups)",
        description="Run the checks of docs/operations/runbooks/server-wont-start.md: port in "
        "use (and by whom), data directories (exist, writable, owned), free disk space and "
        "inodes, the journal header, TLS certificate expiry and key match, last backup age and "
        "archive lag. Read-only; exit 0 when nothing failed, 1 otherwise.",
    )
    add_format_option(parser, default="table")
    parser.add_argument(
        "--user",
        help="account the server runs as (default: stemedb when run as root, else yourself)",
    )
    parser.set_defaults(func=run)
