"""`stemedb serve` and `stemedb config`: every STEMEDB_* variable is also a flag.

Flags are derived from the configuration's variable list, so a new setting
gets its flag for free: `STEMEDB_MAX_BODY_BYTES` -> `--max-body-bytes`
(plus the short `--bind` for `STEMEDB_BIND_ADDR`). A flag overrides the
environment and is parsed (and reported when bad) exactly like the variable.
Secrets (`STEMEDB_ROOT_API_KEY`) have no flag: argv is visible to every user.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from typing import Any

from stemedb.cli.output import add_format_option, emit
from stemedb.config import KNOWN_VARIABLES, SECRET_FIELDS, ConfigError, load_settings
from stemedb.settings_table import BY_VARIABLE, plain

SECRET_VARIABLES = frozenset(f"STEMEDB_{name.upper()}" for name in SECRET_FIELDS)
ALIASES = {"STEMEDB_BIND_ADDR": ("--bind",)}


def flag_for(variable: str) -> str:
    return "--" + variable.removeprefix("STEMEDB_").lower().replace("_", "-")


def setting_help(variable: str) -> str:
    """`--help` text of a setting's flag: its meaning and default from the settings table
    (the one docs/operations/configuration.md is generated from)."""
    row = BY_VARIABLE.get(variable)
    if row is None:
        return f"sets {variable}"
    text = f"{plain(row.meaning)} (default {plain(row.default)}; env {variable})"
    return text.replace("%", "%%")  # argparse formats help with %


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each overrides its environment variable)")
    for variable in sorted(KNOWN_VARIABLES - SECRET_VARIABLES):
        group.add_argument(
            *ALIASES.get(variable, ()),
            flag_for(variable),
            dest=variable,
            metavar="VALUE",
            default=None,
            help=setting_help(variable),
        )


def overrides_from(args: argparse.Namespace) -> dict[str, str]:
    """The STEMEDB_* values given as flags (raw strings, parsed by load_settings)."""
    return {
        variable: value
        for variable in KNOWN_VARIABLES
        if (value := getattr(args, variable, None)) is not None
    }


PORT_RUNBOOK = "docs/operations/runbooks/server-wont-start.md §1"


def port_in_use(host: str, port: int) -> bool:
    """True when nothing may listen on HOST:PORT because something already does.

    Asked before the server starts, so a second `stemedb serve` on a taken port says
    so at once instead of first opening the store and verifying the journal tail
    (steps 5-8), which on a big database takes long and contends with the running
    server's file. SO_REUSEADDR as waitress sets it: a port in TIME_WAIT is free.
    Only EADDRINUSE counts; any other bind problem is step 9's to report."""
    if port == 0:
        return False
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False  # a bad host is step 3/9's to report, with its own runbook line
    for family, kind, proto, _, address in infos[:1]:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return exc.errno == errno.EADDRINUSE
    return False


def run_serve(args: argparse.Namespace) -> int:
    from stemedb.server import run_server

    overrides = overrides_from(args)
    try:
        settings = load_settings({**os.environ, **overrides})
    except ConfigError:
        settings = None  # the server's step 3 names the bad variable
    if settings is not None and port_in_use(settings.bind_host, settings.bind_port):
        print(
            f"stemedb serve: FAILED: address {settings.bind_addr} is already in use "
            f"(another stemedb-api? find it with: lsof -i :{settings.bind_port}; "
            f"or run `stemedb doctor`). See {PORT_RUNBOOK}",
            file=sys.stderr,
        )
        return 1
    return run_server(overrides)


def run_config(args: argparse.Namespace) -> int:
    overrides = overrides_from(args)
    try:
        settings = load_settings({**os.environ, **overrides})
    except ConfigError as exc:
        given = f" (given as {flag_for(exc.variable)})" if exc.variable in overrides else ""
        print(f"stemedb config: {exc.variable}{given}: {exc.problem}", file=sys.stderr)
        return 1
    described = dict(sorted(settings.describe().items()))
    rows = [{"setting": k, "value": v} for k, v in described.items()]
    emit(args.format, described, rows, columns=("setting", "value"))
    return 0


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the HTTP server (also installed as stemedb-api)",
        description="Run the HTTP API server in the foreground. Stops cleanly on SIGTERM/SIGINT.",
    )
    add_setting_flags(serve)
    serve.set_defaults(func=run_serve)
    config = subparsers.add_parser(
        "config",
        help="print the effective configuration (secrets masked)",
        description="Print the configuration the server would run with; exit 1 naming a bad value.",
    )
    add_setting_flags(config)
    add_format_option(config)
    config.set_defaults(func=run_config)
