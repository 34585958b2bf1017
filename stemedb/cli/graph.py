"""The rest of the API on the command line: sign, vote, epoch, supersede, alias, trace,
audit and feed.

Each command is one `Client` call, like `assert` and `query` (records.py), so
the CLI, the Python client and docs/api.md use the same names. `stemedb sign`
is the piece the `curl -d @signed.json` examples of docs/api.md need: it signs
a record into a file without talking to a server.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stemedb.cli.output import dumps, emit, short, when
from stemedb.cli.remote import (
    EXIT_USAGE,
    CliError,
    Command,
    make_client,
    number_between,
    parse_time,
    remote_command,
)

KINDS = ("assertion", "vote", "epoch", "supersession", "alias", "outcome", "agent_tier")
FRAME_COLUMNS = ("seq", "kind", "hash", "written_ms")
AUDIT_COLUMNS = ("query_id", "agent_id", "lens", "subject", "predicate", "timestamp")


def _timestamp(args: argparse.Namespace) -> int | None:
    return parse_time(args.timestamp, "--timestamp") if args.timestamp else None


def _common_write(parser: argparse.ArgumentParser, name: str, command: Command) -> None:
    """--timestamp and the server options of every command that signs and writes a record."""
    parser.add_argument("--timestamp", help="record time: Unix seconds or ISO 8601 (default now)")
    remote_command(parser, name, command)


# ---- sign -------------------------------------------------------------------------


def _read_record(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text("utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or exc}", EXIT_USAGE) from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{source} is not JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(record, dict):
        raise CliError(f"{source}: expected one JSON object (a record)", EXIT_USAGE)
    return record


def run_sign(args: argparse.Namespace) -> int:
    record = _read_record(args.record)
    kind = str(record.pop("kind", None) or args.kind)
    if kind not in KINDS:
        raise CliError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}", EXIT_USAGE)
    client = make_client(args, need_key=True)
    signed = client.sign(kind, record)  # normalised and validated locally, no request
    if args.out is None:
        emit(args.format, signed)
    else:  # a file is for curl -d @FILE or an NDJSON batch: JSON whatever --format says
        args.out.write_text(dumps(signed, pretty=args.format != "ndjson") + "\n", "utf-8")
        print(f"stemedb sign: wrote signed {kind} to {args.out}", file=sys.stderr)
    return 0


def _register_sign(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sign",
        help="sign a record into a file (for curl -d @signed.json)",
        description="Normalise RECORD (a JSON object, or - for stdin) exactly as the server "
        "would, sign it with your key and print it, or write it to -o FILE. Nothing is sent: "
        "POST the file with curl or `stemedb import`. A `kind` field in the record wins "
        "over --kind.",
    )
    parser.add_argument("record", metavar="RECORD", help="JSON file of one unsigned record, or -")
    parser.add_argument("--kind", choices=KINDS, default="assertion", help="record kind")
    parser.add_argument("-o", "--out", type=Path, help="write here instead of stdout")
    remote_command(parser, "sign", run_sign)


# ---- vote, epoch, supersede, alias ----------------------------------------------------


def run_vote(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=True)
    emit(args.format, client.vote(args.hash, args.weight, timestamp=_timestamp(args)))
    return 0


def run_epoch_create(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=True)
    answer = client.create_epoch(
        args.name,
        description=args.description,
        supersedes=args.supersedes or (),
        timestamp=_timestamp(args),
    )
    emit(args.format, answer)
    return 0


def run_epoch_list(args: argparse.Namespace) -> int:
    epochs = make_client(args, need_key=False).epochs()
    emit(args.format, {"epochs": epochs}, epochs)
    return 0


def run_epoch_show(args: argparse.Namespace) -> int:
    emit(args.format, make_client(args, need_key=False).epoch(args.id))
    return 0


def run_supersede(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=True)
    answer = client.supersede(
        args.target,
        args.reason,
        replacement_hash=args.replacement,
        type=args.type,
        timestamp=_timestamp(args),
    )
    emit(args.format, answer)
    return 0


def run_alias_add(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=True)
    emit(args.format, client.alias(args.alias, args.canonical, timestamp=_timestamp(args)))
    return 0


def run_alias_show(args: argparse.Namespace) -> int:
    emit(args.format, make_client(args, need_key=False).aliases_of(args.path))
    return 0


def _register_writes(subparsers: Any) -> None:
    vote = subparsers.add_parser(
        "vote",
        help="sign and write a vote on an assertion (weight -1..1)",
        description="Vote on HASH with WEIGHT in [-1, 1]; your later vote on the same "
        "assertion replaces the earlier one. The `votes` lens counts them.",
    )
    vote.add_argument("hash", metavar="HASH", help="the assertion voted on")
    vote.add_argument(
        "weight", metavar="WEIGHT", type=number_between(-1, 1), help="-1 (against) .. 1 (for)"
    )
    _common_write(vote, "vote", run_vote)

    epoch = subparsers.add_parser(
        "epoch",
        help="create, list and show epochs (versions of the truth)",
        description="An epoch groups claims (`assert --epoch ID`); a newer epoch can "
        "supersede older ones, and `query --lens epoch` reads the newest.",
    )
    sub = epoch.add_subparsers(dest="epoch_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="sign and write an epoch; prints its id (hash)")
    create.add_argument("name", metavar="NAME", help="e.g. fda-label-2024")
    create.add_argument("--description", help="what this epoch is")
    create.add_argument(
        "--supersedes", metavar="ID", action="append", help="an older epoch id (repeatable)"
    )
    _common_write(create, "epoch create", run_epoch_create)
    listing = sub.add_parser("list", help="every epoch with its superseded flag")
    remote_command(listing, "epoch list", run_epoch_list, key=False)
    show = sub.add_parser("show", help="one epoch by id")
    show.add_argument("id", metavar="ID", help="the epoch id (the hash `epoch create` printed)")
    remote_command(show, "epoch show", run_epoch_show, key=False)

    supersede = subparsers.add_parser(
        "supersede",
        help="hide an assertion from lenses (Invalidate) or replace it (Correct)",
        description="Sign and write a supersession of TARGET. Nothing is deleted: `trace` and "
        "`query --include-superseded` still show it.",
    )
    supersede.add_argument("target", metavar="TARGET", help="hash of the assertion superseded")
    supersede.add_argument("--reason", required=True, help="why, in a few words")
    supersede.add_argument("--replacement", metavar="HASH", help="the assertion replacing it")
    supersede.add_argument(
        "--type", choices=("Invalidate", "Correct"), help="default: Correct with --replacement"
    )
    _common_write(supersede, "supersede", run_supersede)

    alias = subparsers.add_parser(
        "alias",
        help="map another name to a concept path, or show a path's aliases",
        description="Queries on an alias read its canonical path (unless --no-aliases).",
    )
    sub = alias.add_subparsers(dest="alias_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="sign and write ALIAS -> CANONICAL")
    add.add_argument("alias", metavar="ALIAS", help="the other name, e.g. ozempic")
    add.add_argument("canonical", metavar="CANONICAL", help="the concept path it stands for")
    _common_write(add, "alias add", run_alias_add)
    show_alias = sub.add_parser("show", help="the canonical path of PATH and all its aliases")
    show_alias.add_argument("path", metavar="PATH", help="a concept path or an alias")
    remote_command(show_alias, "alias show", run_alias_show, key=False)


# ---- trace, audit, feed -------------------------------------------------------------


def run_trace(args: argparse.Namespace) -> int:
    answer = make_client(args, need_key=False).trace(args.hash, depth=args.depth)
    emit(args.format, answer)
    return 0


def _audit_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    row = {col: entry.get(col) for col in AUDIT_COLUMNS}
    row["agent_id"] = short(entry.get("agent_id"), 8)
    return row


def run_audit(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=False)
    if args.query_id:
        emit(args.format, client.audit_query(args.query_id))
        return 0
    entries = client.audit_queries(
        agent_id=args.agent,
        from_=parse_time(args.since, "--from") if args.since else None,
        to=parse_time(args.until, "--to") if args.until else None,
        limit=args.limit,
    )
    emit(args.format, {"queries": entries}, entries, columns=AUDIT_COLUMNS, view=_audit_row)
    return 0


def _frame_row(frame: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "seq": frame.get("seq"),
        "kind": frame.get("kind"),
        "hash": short(frame.get("hash")),
        "written_ms": frame.get("written_ms"),
    }


def run_feed(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=False)
    if not args.follow:
        page = client.feed(args.after, args.limit, args.kinds, args.wait)
        frames = list(page["frames"])
        emit(args.format, page, frames, columns=FRAME_COLUMNS, view=_frame_row)
        return 0
    # --follow never ends: one line per frame as it arrives (json is printed as ndjson,
    # a document that never closes is no document), flushed so pipes see it at once.
    for frame in client.follow(args.after, kinds=args.kinds, wait=args.wait or 25.0):
        if args.format == "table":
            row = _frame_row(dict(frame))
            print(f"{row['seq']:>8}  {row['kind']:<12}  {row['hash']}  {when(row['written_ms'])}")
        else:
            print(dumps(frame, pretty=False))
        sys.stdout.flush()
    return 0


def _register_reads(subparsers: Any) -> None:
    trace = subparsers.add_parser(
        "trace",
        help="lineage of an assertion: ancestors, children, supersessions, votes",
        description="Follow HASH's parent_hash chain up to --depth, plus its children, the "
        "supersessions that target it and the votes on it.",
    )
    trace.add_argument("hash", metavar="HASH", help="an assertion hash")
    trace.add_argument("--depth", type=int, help="ancestors to follow (server default 10)")
    remote_command(trace, "trace", run_trace, key=False)

    audit = subparsers.add_parser(
        "audit",
        help="the query audit trail, or one audited query in full",
        description="Without QUERY_ID: recent audited queries, newest first. With it: that "
        "query's parameters, winners, contributing assertions and weights.",
    )
    audit.add_argument("query_id", metavar="QUERY_ID", nargs="?", help="one audited query")
    audit.add_argument("--agent", metavar="AGENT_ID", help="only this agent's queries")
    audit.add_argument("--from", dest="since", metavar="T", help="from time T (s or ISO 8601)")
    audit.add_argument("--to", dest="until", metavar="T", help="up to time T (s or ISO 8601)")
    audit.add_argument("--limit", type=int, help="most entries (server default 100)")
    remote_command(audit, "audit", run_audit, key=False)

    feed = subparsers.add_parser(
        "feed",
        help="journal frames after a seq; --follow streams new ones forever",
        description="One page of journal frames after --after. With --follow: every frame "
        "after --after, as NDJSON lines (or table lines), long-polling for new ones and "
        "riding out server restarts without a gap. Stop with Ctrl-C.",
    )
    feed.add_argument("--after", type=int, default=0, metavar="SEQ", help="start after SEQ")
    feed.add_argument("--limit", type=int, default=100, help="frames per page (default 100)")
    feed.add_argument("--kinds", metavar="K,...", help="only these record kinds")
    feed.add_argument(
        "--wait", type=float, default=0, metavar="S", help="long-poll up to S seconds (<= 30)"
    )
    feed.add_argument("--follow", "-f", action="store_true", help="keep streaming new frames")
    remote_command(feed, "feed", run_feed, key=False)


def register(subparsers: Any) -> None:
    _register_sign(subparsers)
    _register_writes(subparsers)
    _register_reads(subparsers)
