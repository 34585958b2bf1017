"""The CLI's surface as a whole, from its argparse tree: every command prints through
the one output layer (`--format json|ndjson|table`), usage errors are exit 2, the
operations commands obey --format, and `serve` refuses a taken port before it opens
the store."""

from __future__ import annotations

import argparse
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from stemedb.cli.main import build_parser, main

# Commands whose --format is not about printing an answer, or that print nothing:
# `serve` and `mcp` run servers; `export`'s --format is the data format (ndjson|csv).
NOT_ANSWERS = {"serve", "mcp", "export"}


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from leaves(child, (*path, name))


def test_every_command_offers_json_ndjson_and_table() -> None:
    missing = []
    for path, parser in leaves(build_parser()):
        if path[0] in NOT_ANSWERS:
            continue
        option = next((a for a in parser._actions if "--format" in a.option_strings), None)
        if option is None or not {"json", "ndjson", "table"} <= set(option.choices or ()):
            missing.append(" ".join(path))
    assert not missing, f"commands without --format json|ndjson|table: {missing}"


@pytest.mark.parametrize(
    "argv",
    [
        ["nonsense"],
        ["query", "x", "--lens", "authorty"],
        ["backup", "--format", "xml"],
        ["vote", "abc", "3"],
        ["epoch"],
        ["feed", "--after", "x"],
        ["assert", "s", "p", "v", "--confidence", "2"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_config_and_verify_print_through_the_output_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STEMEDB_DB_DIR", str(tmp_path / "db"))
    assert main(["config", "--format", "ndjson", "--threads", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"setting": "threads", "value": 3} in rows
    assert main(["config", "--format", "table"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["setting", "value"] and set(lines[1]) <= {"-", " "}
    assert main(["doctor", "--format", "json"]) in (0, 1)
    assert "findings" in json.loads(capsys.readouterr().out)
    assert main(["doctor", "--format", "ndjson"]) in (0, 1)
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert {"check", "status", "detail"} <= set(first)


def test_serve_refuses_a_taken_port_before_opening_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_start(*args: object, **kwargs: object) -> int:
        raise AssertionError("the server was started on a taken port")

    monkeypatch.setattr("stemedb.server.run_server", must_not_start)
    db_dir = tmp_path / "db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--bind", f"127.0.0.1:{port}", "--db-dir", str(db_dir)])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"127.0.0.1:{port} is already in use" in err
    assert err.endswith("docs/operations/runbooks/server-wont-start.md §1")
    assert not db_dir.exists()  # nothing was opened or created


def test_ndjson_rows_are_the_records_and_tables_show_readable_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db-dir", str(tmp_path)]
    if main(["keys", "create", "--role", "reader", *db]) != 0:
        pytest.fail(capsys.readouterr().err)
    capsys.readouterr()
    assert main(["keys", "list", "--format", "ndjson", *db]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert isinstance(row["created_ms"], int) and "created" not in row  # the record, whole
    assert main(["keys", "list", "--format", "table", *db]) == 0
    table = capsys.readouterr().out
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", table), table
