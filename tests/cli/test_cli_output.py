"""Rendering and parsing helpers of the CLI, in process (no server)."""

from __future__ import annotations

import io
import json

import pytest

from stemedb.cli.output import emit, render_table, value_text
from stemedb.cli.records import typed_value
from stemedb.cli.remote import CliError, parse_time


def test_table_aligns_columns_and_right_aligns_numbers() -> None:
    text = render_table(
        [{"value": "yes", "share": 0.5, "n": 2}, {"value": "no_signal", "share": 0.25, "n": 10}]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["value", "share", "n"]
    assert lines[2] == "yes        0.500   2"
    assert lines[3] == "no_signal  0.250  10"
    assert render_table([]) == "(no rows)"


def test_cells_are_one_line_and_bounded() -> None:
    text = render_table([{"v": "a\nb\tc " + "x" * 100}])
    body = text.splitlines()[2]
    assert "\n" not in body and body.startswith("a b c") and body.endswith("…")
    assert len(body) == 48


def test_emit_formats() -> None:
    data = {"status": "Contested", "claims": [{"v": 1}, {"v": 2}]}
    for fmt, check in (
        ("json", lambda out: json.loads(out) == data),
        ("ndjson", lambda out: [json.loads(x) for x in out.splitlines()] == data["claims"]),
        ("table", lambda out: out.startswith("title\nv\n-\n1\n2")),
    ):
        buffer = io.StringIO()
        emit(fmt, data, data["claims"], title="title", out=buffer)
        assert check(buffer.getvalue()), (fmt, buffer.getvalue())


def test_values_print_bare() -> None:
    assert value_text({"type": "Boolean", "value": False}) == "false"
    assert value_text({"type": "Number", "value": 2.5}) == "2.5"
    assert value_text(None) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000", 1700000000),
        ("2023-11-14T22:13:20Z", 1700000000),
        ("2023-11-14T23:13:20+01:00", 1700000000),
        ("2023-11-14", 1699920000),
    ],
)
def test_times_are_unix_seconds_or_iso(text: str, expected: int) -> None:
    assert parse_time(text, "--as-of") == expected


def test_bad_times_and_values_are_usage_errors() -> None:
    with pytest.raises(CliError) as info:
        parse_time("last tuesday", "--as-of")
    assert info.value.code == 2 and "--as-of" in str(info.value)
    for kind, text in (("Number", "nan"), ("Number", "1e999"), ("Boolean", "maybe")):
        with pytest.raises(CliError):
            typed_value(text, kind)
    assert typed_value("1e3", "Number") == {"type": "Number", "value": 1000.0}
    assert typed_value("drugs/x", "Reference") == {"type": "Reference", "value": "drugs/x"}
