"""`stemedb keygen`: make the Ed25519 key that signs your writes.

The file holds the 32-byte seed as hex, mode 0600, written atomically; the
public key printed is your agent id, the name every server shows for your
claims. An existing key is never replaced without `--force`, because losing
it means losing that identity.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stemedb.cli.output import add_format_option, emit
from stemedb.cli.remote import CliError, default_key_file, guarded
from stemedb.crypto import (
    KeyFileError,
    generate_signing_key,
    public_key_hex,
    read_key_file,
    write_key_file,
)


def run_keygen(args: argparse.Namespace) -> int:
    path = Path(args.out).expanduser() if args.out else default_key_file()
    if path.exists() and not args.force:
        try:
            existing = f" (agent id {public_key_hex(read_key_file(path))})"
        except KeyFileError:
            existing = ""
        raise CliError(
            f"{path} already exists{existing}; keeping it. Use --force to replace it "
            "(the old identity is lost unless you have a copy)"
        )
    seed = generate_signing_key()
    try:
        written = write_key_file(path, seed, overwrite=args.force)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    emit(args.format, {"agent_id": public_key_hex(seed), "key_file": str(written)})
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "keygen",
        help="create an Ed25519 signing key (prints your agent id)",
        description="Create the Ed25519 key that signs your writes: 64 hex characters in a "
        "file of mode 0600. Prints the public key, which is your agent id.",
    )
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="where to write the key (default: $STEMEDB_KEY_FILE or ~/.config/stemedb/key)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing key file")
    add_format_option(parser)
    parser.set_defaults(func=guarded("keygen", run_keygen))
