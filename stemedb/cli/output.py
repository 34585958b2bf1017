"""How commands print: JSON by default, NDJSON rows for pipes, aligned tables for people.

The sqlite-utils convention: `--format json` (default) prints the answer
as one JSON document, `--format ndjson` prints one JSON row per line (for
`jq`, `grep` and `stemedb import`), `--format table` prints columns for a
terminal. Commands hand over the raw answer plus how to turn it into rows;
they never format by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("json", "ndjson", "table")
MAX_CELL = 48
Row = Mapping[str, Any]


def add_format_option(parser: argparse.ArgumentParser, *, default: str = "json") -> None:
    """`--format json|ndjson|table`: every command offers all three, since `emit` renders
    any answer each way (the one definition of the option; `export` has its own formats)."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=default,
        help=f"json: the answer as one document (full hashes); ndjson: one JSON row per line; "
        f"table: aligned columns for people, hashes cut, times readable (default {default})",
    )


def dumps(value: Any, *, pretty: bool = True) -> str:
    if pretty:
        return json.dumps(value, indent=2, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def short(hash_text: Any, width: int = 12) -> str:
    """A hash cut to its first `width` hex digits (enough to recognise, not to address)."""
    return str(hash_text)[:width] if hash_text else ""


def value_text(obj: Any) -> str:
    """A tagged object `{"type", "value"}` as the bare value people expect to read."""
    if isinstance(obj, Mapping) and "value" in obj:
        value = obj["value"]
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    return "" if obj is None else str(obj)


def when(value: Any) -> str:
    """Unix seconds (or milliseconds, when too large for seconds) as UTC ISO 8601."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    seconds = value / 1000 if abs(value) >= 100_000_000_000 else value
    try:
        stamp = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return str(value)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def number(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _cell(value: Any) -> str:
    if value is None:
        text = ""
    elif isinstance(value, float):
        text = number(value)
    elif isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    text = " ".join(text.split())  # no newlines or tabs inside a cell
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _numeric(values: Sequence[Any]) -> bool:
    present = [v for v in values if v is not None and v != ""]
    return bool(present) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in present
    )


def is_time_column(name: str) -> bool:
    """Columns holding Unix times: shown as ISO 8601 in tables (json keeps the number)."""
    return name in TIME_COLUMNS or name.endswith(("_ms", "_at", "_time"))


def _readable(column: str, value: Any) -> Any:
    return when(value) if is_time_column(column) and isinstance(value, int | float) else value


TIME_COLUMNS = frozenset({"timestamp", "time", "created", "expires", "known_at", "as_of"})


def render_table(rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    """Rows as aligned text columns (numbers right-aligned, times readable), headed by
    column names."""
    if not rows:
        return "(no rows)"
    cols = list(columns) if columns else list(dict.fromkeys(k for row in rows for k in row))
    rows = [{k: _readable(k, v) for k, v in row.items()} for row in rows]
    cells = [[_cell(row.get(col)) for col in cols] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(cols)]
    right = [_numeric([row.get(col) for row in rows]) for col in cols]

    def line(parts: Sequence[str]) -> str:
        out = [
            part.rjust(width) if is_right else part.ljust(width)
            for part, width, is_right in zip(parts, widths, right, strict=True)
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def render_mapping(data: Row) -> str:
    """A flat object as a two-column key/value table."""
    return render_table([{"field": k, "value": v} for k, v in data.items()], ["field", "value"])


def emit(
    fmt: str,
    data: Any,
    rows: Iterable[Row] | None = None,
    *,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    out: TextIO | None = None,
    view: Callable[[Row], Row] | None = None,
) -> None:
    """Print `data` (json), or `rows` (ndjson/table; default: `data` itself as one row).

    With `view`, `rows` are the API's own records: ndjson prints them whole (full
    hashes, raw times, for scripts) and only the table shows `view(row)`.
    """
    stream = out or sys.stdout
    if fmt == "json":
        print(dumps(data), file=stream)
        return
    row_list = list(rows) if rows is not None else [data]
    if fmt == "ndjson":
        for row in row_list:
            print(dumps(row, pretty=False), file=stream)
        return
    if view is not None:
        row_list = [view(row) for row in row_list]
    if title:
        print(title, file=stream)
    if rows is None and isinstance(data, Mapping):
        print(render_mapping(data), file=stream)
    else:
        print(render_table(row_list, columns), file=stream)


# ---- row views of the API's answers ------------------------------------------

ASSERTION_COLUMNS = (
    "hash",
    "subject",
    "predicate",
    "value",
    "confidence",
    "source_class",
    "lifecycle",
    "agent",
    "timestamp",
)
LENS_COLUMNS = (
    "subject",
    "predicate",
    "winner",
    "value",
    "resolution",
    "conflict",
    "candidates",
)
CLAIM_COLUMNS = ("value", "share", "weight", "assertions", "agents", "best_tier", "tiers")


def assertion_row(assertion: Row) -> dict[str, Any]:
    return {
        "hash": short(assertion.get("hash")),
        "subject": assertion.get("subject"),
        "predicate": assertion.get("predicate"),
        "value": value_text(assertion.get("object")),
        "confidence": assertion.get("confidence"),
        "source_class": assertion.get("source_class"),
        "lifecycle": assertion.get("lifecycle"),
        "agent": short(assertion.get("agent_id"), 8),
        "timestamp": when(assertion.get("timestamp")),
    }


def lens_row(group: Row) -> dict[str, Any]:
    winner = group.get("winner") or {}
    return {
        "subject": group.get("subject"),
        "predicate": group.get("predicate"),
        "winner": short(winner.get("hash")) or "(none)",
        "value": value_text(winner.get("object")),
        "resolution": group.get("resolution_confidence"),
        "conflict": group.get("conflict_score"),
        "candidates": group.get("candidates_count"),
    }


def claim_row(claim: Row) -> dict[str, Any]:
    tiers = claim.get("tiers") or {}
    return {
        "value": value_text(claim.get("object")),
        "share": claim.get("share"),
        "weight": claim.get("weight"),
        "assertions": claim.get("assertion_count"),
        "agents": len(claim.get("agents") or []),
        "best_tier": claim.get("best_tier"),
        "tiers": ", ".join(f"{name}:{count}" for name, count in tiers.items()),
    }
