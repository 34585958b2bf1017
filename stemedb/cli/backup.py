"""`stemedb backup [--dest DIR]`: an online, verified copy; keeps the last N."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import apsw

from stemedb.cli.local import add_db_option
from stemedb.cli.output import add_format_option, emit
from stemedb.ops import backup
from stemedb.ops.cli_support import fail, page_bar, settings_or_none


def run(args: argparse.Namespace) -> int:
    settings = settings_or_none("backup")
    if settings is None:
        return 1
    db_path = args.db or settings.db_path
    dest = args.dest or settings.backup_dir
    keep = settings.backup_keep if args.keep is None else args.keep
    try:
        with page_bar("backup") as report:
            result = backup.backup(db_path, dest, keep=keep, progress=report)
    except (backup.BackupError, OSError) as exc:  # BackupDiskFull names its runbook
        return fail("backup", str(exc))
    except apsw.Error as exc:  # anything else SQLite says: one line, never a traceback
        return fail("backup", f"SQLite: {type(exc).__name__}: {exc}")
    for problem in result.prune_errors:
        print(f"stemedb backup: warning: {problem}", file=sys.stderr)
    out = {**result.metadata, "path": str(result.path), "removed": [str(p) for p in result.removed]}
    emit(args.format, out)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backup",
        help="online backup into STEMEDB_BACKUP_DIR, verified, keeping the last N",
        description="Copy the database with SQLite's online backup API (safe while the server "
        "writes) into DIR/stemedb-backup-YYYYMMDD-HHMMSS/ with metadata.json, verify the copy "
        "(integrity, hash chain, counts) and keep the newest STEMEDB_BACKUP_KEEP backups. "
        "Exit 1 if anything differs.",
    )
    parser.add_argument("--dest", type=Path, help="backup folder (default: STEMEDB_BACKUP_DIR)")
    add_db_option(parser)
    parser.add_argument(
        "--keep", type=int, help="backups to keep (default: STEMEDB_BACKUP_KEEP); 0 keeps all"
    )
    add_format_option(parser)
    parser.set_defaults(func=run)
