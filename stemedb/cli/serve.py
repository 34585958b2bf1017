"""`stemedb serve` and `stemedb config`: every STEMEDB_* variable is also a flag.

Flags are derived from the configuration's variable list, so a new setting
gets its flag for free: `STEMEDB_MAX_BODY_BYTES` -> `--max-body-bytes`
(plus the short `--bind` for `STEMEDB_BIND_ADDR`). A flag overrides the
environment and is parsed (and reported when bad) exactly like the variable.
Secrets (`STEMEDB_ROOT_API_KEY`) have no flag: argv is visible to every user.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from stemedb.config import KNOWN_VARIABLES, SECRET_FIELDS, ConfigError, load_settings

SECRET_VARIABLES = frozenset(f"STEMEDB_{name.upper()}" for name in SECRET_FIELDS)
ALIASES = {"STEMEDB_BIND_ADDR": ("--bind",)}


def flag_for(variable: str) -> str:
    return "--" + variable.removeprefix("STEMEDB_").lower().replace("_", "-")


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each overrides its environment variable)")
    for variable in sorted(KNOWN_VARIABLES - SECRET_VARIABLES):
        group.add_argument(
            *ALIASES.get(variable, ()),
            flag_for(variable),
            dest=variable,
            metavar="VALUE",
            default=None,
            help=f"sets {variable}",
        )


def overrides_from(args: argparse.Namespace) -> dict[str, str]:
    """The STEMEDB_* values given as flags (raw strings, parsed by load_settings)."""
    return {
        variable: value
        for variable in KNOWN_VARIABLES
        if (value := getattr(args, variable, None)) is not None
    }


def run_serve(args: argparse.Namespace) -> int:
    from stemedb.server import run_server

    return run_server(overrides_from(args))


def run_config(args: argparse.Namespace) -> int:
    overrides = overrides_from(args)
    try:
        settings = load_settings({**os.environ, **overrides})
    except ConfigError as exc:
        given = f" (given as {flag_for(exc.variable)})" if exc.variable in overrides else ""
        print(f"stemedb config: {exc.variable}{given}: {exc.problem}", file=sys.stderr)
        return 1
    print(json.dumps(settings.describe(), indent=2, sort_keys=True))
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
        help="print the effective configuration as JSON (secrets masked)",
        description="Print the configuration the server would run with; exit 1 naming a bad value.",
    )
    add_setting_flags(config)
    config.set_defaults(func=run_config)
