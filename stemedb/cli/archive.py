"""`stemedb archive`: seal new journal frames into segments, then ship them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stemedb.cli.local import add_db_option
from stemedb.cli.output import add_format_option, emit
from stemedb.ops import archive
from stemedb.ops.cli_support import fail, settings_or_none


def run(args: argparse.Namespace) -> int:
    settings = settings_or_none("archive")
    if settings is None:
        return 1
    db_path = args.db or settings.db_path
    wal_dir = args.wal_dir or settings.wal_dir
    out: dict[str, Any] = {}
    status = 0
    try:
        with archive.locked(wal_dir):
            result = archive.seal(db_path, wal_dir)
            out = result.to_dict()
            if settings.archive_command:
                try:
                    shipped = archive.ship(wal_dir, settings.archive_command)
                    out["shipped"] = [s.path.name for s in shipped]
                except archive.ArchiveError as exc:
                    out["error"] = str(exc)
                    status = fail("archive", str(exc))
            else:
                out["shipped"] = []
                out["note"] = (
                    "STEMEDB_ARCHIVE_COMMAND is not set: segments stay in the WAL directory"
                )
    except archive.ArchiveError as exc:
        return fail("archive", str(exc))
    except OSError as exc:
        return fail("archive", str(exc))
    emit(args.format, out)
    return status


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "archive",
        help="seal new journal frames into STEMEDB_WAL_DIR segments and ship them",
        description="Write the journal frames since the last archived seq into "
        "STEMEDB_WAL_DIR/journal-<first>-<last>.ndjson (fsynced), then run "
        "STEMEDB_ARCHIVE_COMMAND for every segment not shipped yet (%p = path, %f = file "
        "name; 3 tries with backoff; <segment>.done marks success). Incremental and "
        "idempotent; exit 1 if sealing or shipping fails.",
    )
    add_db_option(parser)
    parser.add_argument("--wal-dir", type=Path, help="segment folder (default: STEMEDB_WAL_DIR)")
    add_format_option(parser)
    parser.set_defaults(func=run)
