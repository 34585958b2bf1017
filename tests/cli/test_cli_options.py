"""The shared options are defined once and every command gets the same ones.

`remote_command` (stemedb/cli/remote.py) adds --url/--key/--api-key/--timeout and
--format to every command that talks to a server; these tests walk the whole
argparse tree, so a command wired by hand with a different option fails here.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from stemedb.cli.main import build_parser, main
from stemedb.cli.output import FORMATS
from stemedb.cli.remote import number_between

SERVER = ("--url", "--api-key", "--timeout")
OWN_FORMAT = {"stemedb export"}  # ndjson|csv: records, not answers


def _commands(
    parser: argparse.ArgumentParser, path: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from _commands(child, f"{path} {name}")


COMMANDS = dict(_commands(build_parser(), "stemedb"))


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings}


def _group_of(parser: argparse.ArgumentParser, option: str) -> str | None:
    for group in parser._action_groups:
        if any(option in a.option_strings for a in group._group_actions):
            return group.title
    return None


@pytest.mark.parametrize("path", sorted(p for p in COMMANDS if "--url" in _options(COMMANDS[p])))
def test_every_server_command_has_the_same_server_options(path: str) -> None:
    parser = COMMANDS[path]
    options = _options(parser)
    for option in SERVER:
        assert option in options, f"{path} lacks {option}"
        assert _group_of(parser, option) == "server", f"{path}: {option} outside 'server'"
    assert options["--timeout"].default == 30.0
    assert options["--url"].help == COMMANDS["stemedb query"]._option_string_actions["--url"].help


@pytest.mark.parametrize("path", sorted(p for p in COMMANDS if "--format" in _options(COMMANDS[p])))
def test_every_format_option_offers_json_ndjson_and_table(path: str) -> None:
    option = _options(COMMANDS[path])["--format"]
    if path in OWN_FORMAT:
        assert option.choices == ("ndjson", "csv")
        return
    assert tuple(option.choices or ()) == FORMATS


def test_server_commands_are_the_ones_expected() -> None:
    """Guards the walk above: it must see the server commands at all."""
    with_url = {p for p in COMMANDS if "--url" in _options(COMMANDS[p])}
    assert {"stemedb query", "stemedb vote", "stemedb mcp", "stemedb epoch list"} <= with_url
    assert "stemedb backup" not in with_url


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["vote", "a" * 64, "2"], "2 is not between -1 and 1"),
        (["vote", "a" * 64, "much"], "'much' is not a number"),
        (["assert", "d/x", "p", "v", "--confidence", "1.5"], "1.5 is not between 0 and 1"),
        (["assert", "d/x", "p", "v", "--confidence", "nan"], "nan is not between 0 and 1"),
    ],
)
def test_a_number_out_of_range_is_a_usage_error_before_any_request(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # No server runs at this URL: exit 2 proves the value was refused before a request.
    assert main([*argv, "--url", "http://127.0.0.1:9"]) == 2
    assert message in capsys.readouterr().err


def test_number_between_accepts_its_bounds() -> None:
    check = number_between(-1, 1)
    assert (check("-1"), check("1"), check("0.25")) == (-1.0, 1.0, 0.25)
