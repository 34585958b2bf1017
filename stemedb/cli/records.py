"""`stemedb assert`, `stemedb query`, `stemedb skeptic`: signed writes and reads.

Thin on purpose: each command maps its flags to one `Client` call and hands
the answer to `output.emit`. Anything a command can do, the Python client
can do with the same names.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping
from typing import Any

from stemedb.cli.output import (
    ASSERTION_COLUMNS,
    CLAIM_COLUMNS,
    LENS_COLUMNS,
    assertion_row,
    claim_row,
    emit,
    lens_row,
    number,
)
from stemedb.cli.remote import (
    EXIT_USAGE,
    CliError,
    make_client,
    number_between,
    parse_time,
    remote_command,
    time_params,
)
from stemedb.client import ApiError
from stemedb.lenses.registry import LENS_NAMES, UnknownLens, canonical_lens_name

OBJECT_TYPES = ("Text", "Number", "Boolean", "Reference")
_INT = re.compile(r"^[+-]?\d+$")
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def typed_value(text: str, kind: str) -> dict[str, Any]:
    """VALUE as the tagged object of `--type` (Text unless told otherwise: a shell
    word is text, and guessing `1` vs `"1"` would silently change what is claimed)."""
    value: Any = text
    if kind == "Number":
        try:
            value = int(text) if _INT.match(text) else float(text)
        except ValueError:
            raise CliError(f"VALUE {text!r} is not a number (--type Number)", EXIT_USAGE) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise CliError(f"VALUE {text!r} must be a finite number", EXIT_USAGE)
    elif kind == "Boolean":
        lowered = text.strip().lower()
        if lowered not in _TRUE | _FALSE:
            raise CliError(f"VALUE {text!r} is not true/false (--type Boolean)", EXIT_USAGE)
        value = lowered in _TRUE
    return {"type": kind, "value": value}


# ---- assert ---------------------------------------------------------------------


def run_assert(args: argparse.Namespace) -> int:
    value = typed_value(args.value, args.type)  # usage errors before any I/O
    fields = {
        "source": args.source,
        "source_class": args.source_class,
        "source_hash": args.source_hash,
        "lifecycle": args.lifecycle,
        "parent_hash": args.parent,
        "epoch": args.epoch,
        "timestamp": parse_time(args.timestamp, "--timestamp") if args.timestamp else None,
    }
    client = make_client(args, need_key=not args.unsigned)
    if args.unsigned:
        client.seed = None  # send as given; the server must allow unsigned records
    result: dict[str, Any] = dict(
        client.assert_(args.subject, args.predicate, value, args.confidence, **fields)
    )
    result.update(_tier_written(client, result, declared=args.source_class))
    emit(args.format, result)
    return 0


def _tier_written(client: Any, result: dict[str, Any], *, declared: str | None) -> dict[str, Any]:
    """The tier the server stored, read back, and whether it was inferred (no
    --source-class: the server derived it from the source URI's scheme). A writer who
    left the tier out should see what was decided for them, not discover it at read time."""
    try:
        stored = client.assertion(str(result.get("hash")))
    except ApiError:  # written but not readable by this key: say nothing rather than guess
        return {}
    return {"source_class": stored.get("source_class"), "source_class_inferred": declared is None}


def _register_assert(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "assert",
        help="sign and write one claim",
        description="Sign SUBJECT / PREDICATE / VALUE with your key and write it. Prints "
        '{"hash", "seq", "status"}; writing the same signed claim again answers "exists".',
    )
    parser.add_argument("subject", metavar="SUBJECT", help="concept path, e.g. drugs/semaglutide")
    parser.add_argument("predicate", metavar="PREDICATE", help="the property, e.g. dose_mg")
    parser.add_argument("value", metavar="VALUE", help="the claimed value (see --type)")
    parser.add_argument(
        "--confidence", type=number_between(0, 1), required=True, help="your certainty, 0..1"
    )
    parser.add_argument(
        "--type", choices=OBJECT_TYPES, default="Text", help="how to read VALUE (default Text)"
    )
    parser.add_argument("--source", help="URI of the evidence, e.g. pubmed://38012345")
    parser.add_argument(
        "--source-class",
        help="authority tier: Regulatory, Clinical, Observational, Expert, Community, Anecdotal "
        "(default: inferred from the source's scheme)",
    )
    parser.add_argument("--source-hash", help="64-hex content address of the evidence")
    parser.add_argument(
        "--lifecycle", help="Proposed (default), UnderReview, Approved, Deprecated, Rejected"
    )
    parser.add_argument("--parent", metavar="HASH", help="the assertion this one revises")
    parser.add_argument("--epoch", metavar="ID", help="the epoch this claim belongs to")
    parser.add_argument("--timestamp", help="claim time: Unix seconds or ISO 8601 (default now)")
    parser.add_argument(
        "--unsigned", action="store_true", help="do not sign (servers that allow unsigned writes)"
    )
    remote_command(parser, "assert", run_assert)


# ---- query ----------------------------------------------------------------------


def _query_params(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "predicate": args.predicate,
        "lens": args.lens,
        "inner": args.inner,
        "prefix": True if args.prefix else None,
        "lifecycle": args.lifecycle,
        "epoch": args.epoch,
        "source_class": args.source_class,
        "max_tier": args.max_tier,
        "agent_id": args.agent,
        **time_params(args),
        "decay": args.decay,
        "include_superseded": True if args.include_superseded else None,
        "resolve_aliases": False if args.no_aliases else None,
        "limit": args.limit,
        "cursor": args.cursor,
    }


def run_query(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=False)
    params = _query_params(args)
    if args.all:
        rows = list(client.query_all(args.subject, **params))
        view = lens_row if args.lens else assertion_row
        columns = LENS_COLUMNS if args.lens else ASSERTION_COLUMNS
        emit(args.format, rows, rows, columns=columns, view=view)
        return 0
    answer = client.query(args.subject, **params)
    if "results" in answer:
        groups = answer.get("results") or []
        title = f"lens {answer.get('lens')}: {len(groups)} group(s)"
        emit(args.format, answer, groups, columns=LENS_COLUMNS, title=title, view=lens_row)
    else:
        listed = answer.get("assertions") or []
        more = " (more: --all or --cursor NEXT)" if answer.get("next_cursor") else ""
        emit(
            args.format,
            answer,
            listed,
            columns=ASSERTION_COLUMNS,
            view=assertion_row,
            title=f"{answer.get('count', len(listed))} assertion(s){more}",
        )
    return 0


def _add_time_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", metavar="T", help="claim-time travel (Unix s or ISO 8601)")
    parser.add_argument("--known-at", metavar="T", help="what the server knew at T")
    parser.add_argument("--decay", help="none (default), tier, or a half-life in days")
    parser.add_argument("--lifecycle", help="a stage, a comma list, or any (default)")
    parser.add_argument(
        "--include-superseded", action="store_true", help="let superseded assertions compete"
    )


def _lens_name(text: str) -> str:
    """An unknown lens is a usage error (exit 2) with a "did you mean", before any request."""
    try:
        return canonical_lens_name(text)
    except UnknownLens as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _register_query(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "query",
        help="list assertions, or resolve them through a lens",
        description="Without --lens: list the matching assertions. With --lens: one answer per "
        "(subject, predicate), each explained. Lenses: " + ", ".join(LENS_NAMES) + ".",
    )
    parser.add_argument("subject", metavar="SUBJECT", help="concept path (or an alias of one)")
    parser.add_argument("--predicate", "-p", help="only this predicate")
    parser.add_argument("--lens", "-l", type=_lens_name, help="resolve through this lens")
    parser.add_argument("--inner", help="inner lens of --lens epoch (default recency)")
    parser.add_argument("--prefix", action="store_true", help="the whole subtree under SUBJECT")
    parser.add_argument("--epoch", metavar="ID", help="only assertions of this epoch")
    parser.add_argument("--source-class", help="only these tiers (comma list)")
    parser.add_argument("--max-tier", type=int, help="only tiers 0..N")
    parser.add_argument("--agent", metavar="AGENT_ID", help="only this signer")
    parser.add_argument(
        "--no-aliases", action="store_true", help="do not resolve SUBJECT as an alias"
    )
    _add_time_filters(parser)
    parser.add_argument("--limit", type=int, help="page size (default 100, max 1000)")
    parser.add_argument("--cursor", help="next_cursor of a previous page")
    parser.add_argument("--all", action="store_true", help="follow cursors; print rows")
    remote_command(parser, "query", run_query)


# ---- skeptic --------------------------------------------------------------------


def skeptic_title(answer: Mapping[str, Any]) -> str:
    """The skeptic's verdict in words. The API's `claims` are the distinct values (several
    assertions of one value are one claim), so the title says "distinct values"; a pair
    nobody has claimed says so instead of "Unanimous, 0 candidates"."""
    pair = f"{answer.get('subject')} {answer.get('predicate')}"
    candidates = answer.get("candidates_count") or 0
    values = len(answer.get("claims") or [])
    if not candidates:
        return f"{pair}: no claims (nothing to be skeptical about)"
    plural = "" if values == 1 else "s"
    return (
        f"{pair}: {answer.get('status')} (conflict {number(answer.get('conflict_score'))}, "
        f"{candidates} candidates, {values} distinct value{plural})"
    )


def run_skeptic(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=False)
    params = {
        **time_params(args),
        "decay": args.decay,
        "lifecycle": args.lifecycle,
        "include_superseded": True if args.include_superseded else None,
    }
    answer = client.skeptic(args.subject, args.predicate, **params)
    claims = answer.get("claims") or []
    emit(
        args.format,
        answer,
        claims,
        columns=CLAIM_COLUMNS,
        title=skeptic_title(answer),
        view=claim_row,
    )
    return 0


def _register_skeptic(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "skeptic",
        help="how contested is a claim? (Unanimous / Agreed / Contested)",
        description="Conflict analysis of SUBJECT / PREDICATE: every distinct value (the "
        "API's `claims`; one row per value, however many assertions support it) with its "
        "share of the weight, its supporters and their tiers, and the conflict score.",
    )
    parser.add_argument("subject", metavar="SUBJECT", help="concept path (or an alias of one)")
    parser.add_argument("predicate", metavar="PREDICATE", help="the property, e.g. dose_mg")
    _add_time_filters(parser)
    remote_command(parser, "skeptic", run_skeptic)


def register(subparsers: Any) -> None:
    _register_assert(subparsers)
    _register_query(subparsers)
    _register_skeptic(subparsers)
