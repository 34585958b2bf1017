"""What every command that talks to a server shares: --url/--key/--api-key/--timeout
(`remote_command` adds them with --format and the entry point), the client they build,
and one way to report failures (message on stderr, exit 1).

Options fall back to environment variables so scripts set them once:
STEMEDB_URL, STEMEDB_KEY_FILE, STEMEDB_API_KEY (a secret: prefer the
variable to the flag, since argv is visible to every user on the machine).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from stemedb.cli.output import add_format_option
from stemedb.client import DEFAULT_URL, ApiError, Client
from stemedb.crypto import KeyFileError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
Command = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A failure to report in one line (no traceback); `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def default_key_file() -> Path:
    return Path(os.environ.get("STEMEDB_KEY_FILE") or "~/.config/stemedb/key").expanduser()


def add_remote_options(
    parser: argparse.ArgumentParser, *, key: bool = True
) -> argparse._ArgumentGroup:
    """--url, --key (unless `key` is False), --api-key and --timeout, in a "server" group
    (returned, so a command with its own idea of a key can add it there)."""
    group = parser.add_argument_group("server")
    group.add_argument(
        "--url",
        default=None,
        help=f"server URL (env STEMEDB_URL, default {DEFAULT_URL})",
    )
    if key:
        group.add_argument(
            "--key",
            type=Path,
            default=None,
            help="signing key file from `stemedb keygen` "
            "(env STEMEDB_KEY_FILE, default ~/.config/stemedb/key)",
        )
    group.add_argument(
        "--api-key",
        default=os.environ.get("STEMEDB_API_KEY"),
        help="API key when the server has auth on (env STEMEDB_API_KEY, preferred)",
    )
    group.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for an answer (default 30)"
    )
    return group


def remote_command(
    parser: argparse.ArgumentParser,
    name: str,
    command: Command,
    *,
    key: bool = True,
    output: bool = True,
) -> None:
    """The tail every command that talks to a server shares: the server options, `--format`
    (unless `output` is False: the command has its own) and the guarded entry point that
    reports failures as `stemedb NAME: message`. Call it after the command's own options,
    so the usage line lists those first."""
    add_remote_options(parser, key=key)
    if output:
        add_format_option(parser)
    parser.set_defaults(func=guarded(name, command))


def server_url(args: argparse.Namespace) -> str:
    """`--url`, else STEMEDB_URL, else the default (resolved late so commands can tell
    whether the flag was given)."""
    return str(getattr(args, "url", None) or os.environ.get("STEMEDB_URL") or DEFAULT_URL)


def key_path(args: argparse.Namespace) -> Path:
    given = getattr(args, "key", None)
    return Path(given).expanduser() if given is not None else default_key_file()


def make_client(args: argparse.Namespace, *, need_key: bool) -> Client:
    """A client for `--url`; with `need_key` the key file must exist (writes are
    signed). Reads use the key only, when present, for the X-Agent-Id header."""
    path = key_path(args) if hasattr(args, "key") else None
    key_file: Path | None = None
    if path is not None and (need_key or path.is_file()):
        key_file = path
    try:
        return Client(
            server_url(args),
            key_file=key_file,
            api_key=args.api_key,
            timeout=args.timeout,
        )
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def parse_time(text: str, option: str) -> int:
    """Unix seconds, or an ISO 8601 date/time (UTC when no offset is given)."""
    value = text.strip()
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{option}: expected Unix seconds or an ISO 8601 time like 2024-01-31T12:00:00Z, "
            f"got {text!r}",
            EXIT_USAGE,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def number_between(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number in [low, high]; anything else is a usage error (exit 2)
    naming the range, before any request (`--confidence`, a vote's WEIGHT)."""

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text} is not between {low:g} and {high:g}")
        return value

    return number


def time_params(args: argparse.Namespace) -> dict[str, int | None]:
    """`--as-of` / `--known-at` (Unix seconds or ISO 8601) as the client's keyword arguments."""
    return {
        "as_of": parse_time(args.as_of, "--as-of") if args.as_of else None,
        "known_at": parse_time(args.known_at, "--known-at") if args.known_at else None,
    }


def report(error: ApiError) -> str:
    """An API error as the lines a person needs: status, code, message, fields, request id."""
    lines = [str(error)]
    for detail in error.details[:20]:
        if isinstance(detail, dict):
            line = f"{detail.get('field', '?')}: {detail.get('problem', '')}"
            if len(error.details) > 1 or line not in error.message:
                lines.append("  " + line)
    return "\n".join(lines)


def guarded(name: str, command: Command) -> Command:
    """Run a command; turn expected failures into `stemedb NAME: message` and an exit code."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except CliError as exc:
            print(f"stemedb {name}: {exc}", file=sys.stderr)
            return exc.code
        except ApiError as exc:
            print(f"stemedb {name}: {report(exc)}", file=sys.stderr)
            return EXIT_FAILURE
        except BrokenPipeError:  # `stemedb export | head`: the reader left, not an error
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_OK
        except KeyboardInterrupt:
            print(f"stemedb {name}: interrupted", file=sys.stderr)
            return 130

    return run
