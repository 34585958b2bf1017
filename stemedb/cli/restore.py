"""`stemedb restore`: a backup (or nothing) plus archived segments, to a chosen point."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stemedb.cli.output import add_format_option, emit
from stemedb.ops import restore
from stemedb.ops.cli_support import fail, progress_bar, settings_or_none


def run(args: argparse.Namespace) -> int:
    settings = settings_or_none("restore")
    if settings is None:
        return 1
    if args.from_archive == (args.backup_dir is not None):
        print("stemedb restore: give either BACKUP_DIR or --from-archive", file=sys.stderr)
        return 2
    # operations.md: segments are replayed from --wal-dir, default STEMEDB_WAL_DIR (a
    # missing or empty folder restores the backup alone).
    wal_dir = args.wal_dir if args.wal_dir is not None else settings.wal_dir
    try:
        until_ms = restore.parse_until_time(args.until_time) if args.until_time else None
    except ValueError as exc:
        print(f"stemedb restore: {exc}", file=sys.stderr)
        return 2
    target = args.target or settings.db_path
    try:
        with progress_bar(None, "frame", "replay") as advance:
            result = restore.restore(
                target,
                backup_dir=args.backup_dir,
                wal_dir=wal_dir,
                until_seq=args.until_seq,
                until_ms=until_ms,
                force=args.force,
                progress=advance,
            )
    except restore.RestoreError as exc:
        where = f" (seq {exc.seq})" if exc.seq is not None else ""
        return fail("restore", f"{exc}{where}")
    except OSError as exc:
        return fail("restore", str(exc))
    emit(args.format, result.to_dict())
    print(
        f"restored {target}: journal seq {result.journal_seq}, chain head {result.chain_head}",
        file=sys.stderr,
    )
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore a backup and replay archived journal segments (point in time)",
        description="Copy BACKUP_DIR (after checking its sha3_256), replay the archived "
        "segments of --wal-dir (default STEMEDB_WAL_DIR) after its head up to "
        "--until-seq/--until-time (default: all), "
        "checking every frame's hash and chain link, then run a full verify and move the "
        "result to --target. With --from-archive, rebuild from segments alone. Refuses to "
        "overwrite an existing database without --force; exit 1 naming the seq on a mismatch.",
    )
    parser.add_argument(
        "backup_dir",
        nargs="?",
        type=Path,
        metavar="BACKUP_DIR",
        help="a stemedb-backup-* folder made by `stemedb backup` (omit with --from-archive)",
    )
    parser.add_argument(
        "--from-archive", action="store_true", help="no backup: rebuild from segments alone"
    )
    parser.add_argument(
        "--wal-dir", type=Path, help="archive segments to replay (default: STEMEDB_WAL_DIR)"
    )
    point = parser.add_mutually_exclusive_group()
    point.add_argument("--until-seq", type=int, metavar="N", help="stop after journal seq N")
    point.add_argument(
        "--until-time",
        metavar="T",
        help="stop before the first frame written after T (Unix seconds or ISO-8601, naive = UTC)",
    )
    parser.add_argument(
        "--target", type=Path, help="database file to create (default: STEMEDB_DB_DIR/stemedb.db)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing database")
    add_format_option(parser)
    parser.set_defaults(func=run)
