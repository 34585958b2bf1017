"""`stemedb verify`, `stemedb reindex` and `stemedb migrate`: work on the database file.

`verify` only reads, so it runs next to a live server (the weekly timer
does). `reindex` and `migrate` rewrite tables, so they take the whole file
exclusively and refuse while the server (or anything else) has it open.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from stemedb.cli.local import add_db_option
from stemedb.cli.output import add_format_option, emit
from stemedb.ops.cli_support import fail, progress_bar, settings_or_none
from stemedb.ops.common import DatabaseInUse, open_exclusive
from stemedb.store import schema
from stemedb.store.journal import CORRUPTION_RUNBOOK, JournalError
from stemedb.store.verify import VerifyReport, rebuild_projections, verify


def _db_path(args: argparse.Namespace, command: str) -> Path | None:
    if args.db is not None:
        return Path(args.db)
    settings = settings_or_none(command)
    return settings.db_path if settings is not None else None


def render_report(report: VerifyReport) -> str:
    width = max(len(c["check"]) for c in report.checks) if report.checks else 5
    lines = [
        f"{'ok' if c['ok'] else 'FAIL':<4}  {c['check']:<{width}}  {c['detail']}"
        for c in report.checks
    ]
    lines.append("")
    lines.append(f"database     {report.path}")
    lines.append(f"journal seq  {report.journal_seq}")
    lines.append(f"chain head   {report.chain_head}")
    if report.first_bad_seq is not None:
        lines.append(f"first bad seq {report.first_bad_seq}")
    lines.append(f"result       {'OK' if report.ok else 'FAILED'} ({report.seconds:.2f} s)")
    return "\n".join(lines)


def run_verify(args: argparse.Namespace) -> int:
    path = _db_path(args, "verify")
    if path is None:
        return 1
    with progress_bar(None, "frame", "verify") as advance:
        report = verify(path, full=args.full, progress=advance)
    if args.format == "table":
        print(render_report(report))
    else:
        answer = report.to_dict()
        emit(args.format, answer, answer.get("checks"))
    if not report.ok:
        where = f" at seq {report.first_bad_seq}" if report.first_bad_seq is not None else ""
        bad = next(c for c in report.checks if not c["ok"])
        print(
            f"stemedb verify: FAILED{where}: {bad['check']}: {bad['detail']} "
            f"(see {CORRUPTION_RUNBOOK})",
            file=sys.stderr,
        )
        return 1
    return 0


def run_reindex(args: argparse.Namespace) -> int:
    path = _db_path(args, "reindex")
    if path is None:
        return 1
    try:
        conn = open_exclusive(path)
    except (DatabaseInUse, FileNotFoundError) as exc:
        return fail("reindex", str(exc))
    try:
        started = time.perf_counter()
        with progress_bar(None, "frame", "reindex") as advance:
            frames = rebuild_projections(conn, advance)
        seconds = time.perf_counter() - started
    except JournalError as exc:  # a damaged frame: name it, keep the old projections
        return fail("reindex", f"{exc} (see {CORRUPTION_RUNBOOK})")
    finally:
        conn.close()
    rate = frames / seconds if seconds > 0 else float(frames)
    emit(
        args.format,
        {
            "database": str(path),
            "frames": frames,
            "seconds": round(seconds, 3),
            "frames_per_second": round(rate),
        },
    )
    print(f"reindexed {frames} frames in {seconds:.2f} s ({rate:,.0f} frames/s)", file=sys.stderr)
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    path = _db_path(args, "migrate")
    if path is None:
        return 1
    try:
        conn = open_exclusive(path)
    except FileNotFoundError:
        return fail("migrate", f"no database at {path} (the server creates it at first start)")
    except DatabaseInUse as exc:
        return fail("migrate", str(exc))
    try:
        before = schema.user_version(conn)
        applied = schema.apply_migrations(conn)
        after = schema.user_version(conn)
    finally:
        conn.close()
    emit(
        args.format,
        {
            "database": str(path),
            "from_version": before,
            "to_version": after,
            "applied": [m.name for m in applied],
        },
    )
    if not applied:
        print(f"schema is up to date (version {after})", file=sys.stderr)
    for migration in applied:
        print(f"applied {migration.name}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check integrity, the hash chain and the projections (exit 1 naming the bad seq)",
        description="PRAGMA quick_check (integrity_check with --full), every frame's hash and "
        "the whole chain, projection counts; with --full also a rebuild of the projections "
        "into a temporary file compared row by row. Safe next to a running server.",
    )
    parser.add_argument("--full", action="store_true", help="integrity_check and rebuild compare")
    add_db_option(parser)
    add_format_option(parser)
    parser.set_defaults(func=run_verify)
    parser = subparsers.add_parser(
        "reindex",
        help="rebuild every projection from the journal (server stopped)",
        description="Drop and re-derive the derived tables from the journal, in one "
        "transaction. Needs the database to itself: refuses while the server runs.",
    )
    add_db_option(parser)
    add_format_option(parser)
    parser.set_defaults(func=run_reindex)
    parser = subparsers.add_parser(
        "migrate",
        help="apply pending schema migrations (server stopped)",
        description="Apply the numbered migrations newer than the file's user_version, one "
        "transaction each, and print what was applied. The server also does this at start.",
    )
    add_db_option(parser)
    add_format_option(parser)
    parser.set_defaults(func=run_migrate)
