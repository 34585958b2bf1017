"""Docs generated from the code stay generated: docs/cli.md's reference is the argparse
tree, configuration.md's Variables table and `serve --help` come from one settings
table, and nothing in either lacks help text."""

from __future__ import annotations

import pytest

from stemedb.cli import gen_docs
from stemedb.cli.main import build_parser
from stemedb.cli.serve import flag_for, setting_help
from stemedb.config import KNOWN_VARIABLES, SECRET_FIELDS
from stemedb.settings_table import BY_VARIABLE, SETTINGS, plain


def test_generated_sections_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    code = gen_docs.main(["--check"])
    assert code == 0, capsys.readouterr().out + "\nrun: python -m stemedb.cli.gen_docs"


def test_every_command_and_option_has_help_and_is_in_cli_md() -> None:
    doc = gen_docs.CLI_DOC.read_text()
    undocumented = []
    for path, summary, parser in gen_docs.commands(build_parser()):
        name = " ".join(path)
        if not summary.strip():
            undocumented.append(f"{name}: no help line")
        if f"### `stemedb {name}`" not in doc:
            undocumented.append(f"{name}: missing from docs/cli.md")
        for action in gen_docs.options(parser):
            if gen_docs.is_setting_flag(action):
                continue  # documented by the settings table (next tests)
            if not (action.help or "").strip():
                undocumented.append(f"{name} {gen_docs.option_name(action)}: no help")
            elif f"`{gen_docs.option_name(action)}`" not in doc:
                undocumented.append(f"{name} {gen_docs.option_name(action)}: not in cli.md")
    assert not undocumented, "\n".join(undocumented)


def test_the_settings_table_covers_exactly_the_variables_the_server_reads() -> None:
    assert {row.variable for row in SETTINGS} == set(KNOWN_VARIABLES)
    assert len(SETTINGS) == len(BY_VARIABLE)  # no variable twice
    for row in SETTINGS:
        assert row.default.strip() and row.meaning.strip() and row.example.strip(), row


def test_serve_help_says_what_each_setting_means_and_its_default() -> None:
    (serve,) = [p for path, _, p in gen_docs.commands(build_parser()) if path == ("serve",)]
    flags = {a.dest: a for a in serve._actions if gen_docs.is_setting_flag(a)}
    secrets = {f"STEMEDB_{name.upper()}" for name in SECRET_FIELDS}
    assert set(flags) == set(KNOWN_VARIABLES) - secrets  # a secret never becomes a flag
    for variable, action in flags.items():
        row = BY_VARIABLE[variable]
        assert action.help == setting_help(variable)
        assert plain(row.meaning) in action.help.replace("%%", "%")
        assert f"default {plain(row.default)}" in action.help
        assert flag_for(variable) in action.option_strings
    text = serve.format_help()  # renders: no stray % broke argparse's formatting
    assert "--archive-command" in text and "%p" in text
