"""`stemedb keys create|list|revoke`: manage API keys in the database file.

These act on `STEMEDB_DB_DIR/stemedb.db` directly (no server needed), and
are safe while the server runs: SQLite serialises the writes, and the server
re-reads a key at most one second after it last looked (its cache TTL), so a
revocation here takes effect within a second. The key string is printed
once, by `create`; only its SHA3-256 hash is stored.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import apsw

from stemedb.cli.output import add_format_option, emit
from stemedb.cli.remote import CliError, Command, guarded
from stemedb.config import ConfigError, Settings, load_settings
from stemedb.errors import StemeError
from stemedb.security.keys import ROLES, insert_key, list_keys, parse_duration_s, revoke_key
from stemedb.store import api_keys

T = TypeVar("T")
KEY_COLUMNS = ("id", "name", "role", "scope", "status", "created", "expires", "revoked")


def _db_path(args: argparse.Namespace) -> Path:
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if args.db_dir:
        settings = settings.with_overrides(db_dir=Path(args.db_dir))
    return settings.db_path


@contextmanager
def _database(path: Path, *, create: bool = False) -> Iterator[apsw.Connection]:
    """The database at `path`; with `create`, made (journal header, schema) if missing."""
    from stemedb.store import Store, schema

    if not path.exists() or path.stat().st_size == 0:
        if not create:
            raise CliError(f"no database at {path} (set STEMEDB_DB_DIR or --db-dir)")
        path.parent.mkdir(parents=True, exist_ok=True)
        store = Store(Settings(db_dir=path.parent))
        try:
            store.open_journal()
            store.open_projections()
        finally:
            store.close()
    try:
        conn = schema.connect(path)
    except apsw.Error as exc:
        raise CliError(f"cannot open {path}: {exc}") from None
    try:
        if schema.user_version(conn) == 0:
            raise CliError(f"{path} is not an initialised StemeDB database; start the server once")
        yield conn
    finally:
        conn.close()


def _write(conn: apsw.Connection, fn: Callable[[apsw.Connection], T]) -> T:
    return api_keys.immediate(conn, fn)  # the write lock first: no stale-snapshot upgrade


def _when(ms: int | None) -> str:
    return "" if ms is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000))


def _row(key: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **key,
        "created": _when(key["created_ms"]),
        "expires": _when(key["expires_ms"]),
        "revoked": _when(key["revoked_ms"]),
    }


def run_create(args: argparse.Namespace) -> int:
    expires_ms = None
    if args.expires:
        try:
            expires_ms = int(time.time() * 1000 + parse_duration_s(args.expires) * 1000)
        except ValueError as exc:
            raise CliError(f"--expires: {exc}", 2) from None
    with _database(_db_path(args), create=True) as conn:
        try:
            key, secret = _write(
                conn,
                lambda c: insert_key(
                    c, role=args.role, name=args.name or "", scope=args.scope, expires_ms=expires_ms
                ),
            )
        except StemeError as exc:
            raise CliError(exc.message, 2) from None
    if args.format == "table":  # table cells are cut to fit; the secret must not be
        emit("table", key.to_dict(), [_row(key.to_dict())], columns=KEY_COLUMNS)
        print(f"\nAPI key (shown only this once, store it now):\n{secret}")
    else:
        emit(args.format, {"key": key.to_dict(), "api_key": secret})
    return 0


def run_list(args: argparse.Namespace) -> int:
    with _database(_db_path(args)) as conn:
        keys = [key.to_dict() for key in list_keys(conn)]
    emit(args.format, {"keys": keys}, keys, columns=KEY_COLUMNS, view=_row)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    with _database(_db_path(args)) as conn:
        try:
            key = _write(conn, lambda c: revoke_key(c, args.id))
        except StemeError as exc:
            raise CliError(exc.message) from None
    emit(args.format, {"key": key.to_dict()}, [key.to_dict()], columns=KEY_COLUMNS, view=_row)
    return 0


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser(
        "keys",
        help="create, list and revoke API keys (in the database file)",
        description="Manage the API keys checked when STEMEDB_AUTH_ENABLED=true. Acts on "
        "the database file directly; safe while the server runs (a revocation takes effect "
        "within a second).",
    )
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    def common(parser: argparse.ArgumentParser, name: str, command: Command) -> None:
        parser.add_argument(
            "--db-dir", metavar="DIR", help="database directory (default: $STEMEDB_DB_DIR)"
        )
        add_format_option(parser)
        parser.set_defaults(func=guarded(name, command))

    create = sub.add_parser("create", help="create a key and print it (shown only once)")
    create.add_argument("--role", choices=ROLES, required=True, help="reader < writer < admin")
    create.add_argument(
        "--scope", metavar="PATH", help="writer keys only: write only under this concept path"
    )
    create.add_argument("--expires", metavar="DURATION", help="lifetime, e.g. 30d, 12h, 2w")
    create.add_argument("--name", metavar="NAME", help="a label for listings")
    common(create, "keys create", run_create)

    listing = sub.add_parser("list", help="list keys (never their secrets)")
    common(listing, "keys list", run_list)

    revoke = sub.add_parser("revoke", help="revoke a key by id (effective within a second)")
    revoke.add_argument("id", help="the key id, as shown by `keys list`")
    common(revoke, "keys revoke", run_revoke)
