"""Entry points `stemedb` and `stemedb-api`; exit codes 0 ok, 1 failure, 2 usage.

Each subcommand lives in its own module `stemedb.cli.<name>` exposing
`register(subparsers)`, which adds its parser and sets `func(args) -> int`.
To add a command, write the module and add its name to COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from stemedb import __version__

# Modules of stemedb.cli that register subcommands (serve also registers `config`).
COMMANDS: tuple[str, ...] = ("serve", "keys", "keygen", "records", "transfer", "demo")
COMMANDS += ("graph",)  # sign, vote, epoch, supersede, alias, trace, audit, feed
COMMANDS += ("agents",)  # the agent tier registry (stemedb/cli/agents.py)
COMMANDS += ("agent", "mcp")  # public agent profiles; the MCP server (stemedb/mcp)
COMMANDS += ("constraints",)  # rules in force in a context (stemedb/cli/constraints.py)
COMMANDS += ("backup", "archive", "restore", "verify", "doctor")  # operations (stemedb.ops)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stemedb",
        description="StemeDB: signed, conflicting claims resolved at read time through lenses.",
    )
    parser.add_argument("--version", action="version", version=f"stemedb {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"stemedb.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        result: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`stemedb config | head -1`): like any Unix filter,
        # stop quietly. Point stdout at devnull so the interpreter's final flush
        # does not raise again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return result


def serve_main(argv: Sequence[str] | None = None) -> int:
    """`stemedb-api [flags]` = `stemedb serve [flags]` (the name the runbook and units use)."""
    return main(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
