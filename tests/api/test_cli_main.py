"""`stemedb` entry points: subcommand registry, exit codes, flags mirroring every variable."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stemedb.cli import main as cli_main
from stemedb.cli import serve as cli_serve
from stemedb.config import KNOWN_VARIABLES


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in KNOWN_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_no_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_unknown_command_and_bad_flag_are_usage_errors() -> None:
    assert cli_main.main(["frobnicate"]) == 2
    assert cli_main.main(["serve", "--no-such-flag"]) == 2


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--bind" in out and "--db-dir" in out and "--max-body-bytes" in out


def test_config_prints_effective_settings_with_flags_over_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STEMEDB_THREADS", "4")
    monkeypatch.setenv("STEMEDB_SYNC", "normal")
    monkeypatch.setenv("STEMEDB_ROOT_API_KEY", "sk-very-secret-" + "0" * 40)
    assert cli_main.main(["config", "--threads", "6", "--bind", "[::1]:9000"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["threads"] == 6 and shown["sync"] == "normal"
    assert shown["bind_addr"] == "[::1]:9000"
    assert shown["root_api_key"] == "********" and "sk-very-secret-" + "0" * 40 not in out


def test_config_bad_value_exits_1_naming_variable_and_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main.main(["config", "--sync", "sometimes"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("stemedb config: STEMEDB_SYNC (given as --sync):")
    assert "'sometimes'" in err and len(err.splitlines()) == 1


def test_every_variable_but_secrets_has_a_flag() -> None:
    parser = cli_main.build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr,index]
    dests = {action.dest for action in serve._actions}
    assert dests >= KNOWN_VARIABLES - {"STEMEDB_ROOT_API_KEY"}
    assert "STEMEDB_ROOT_API_KEY" not in dests


def test_serve_passes_flag_overrides_to_run_server(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run_server(overrides: dict[str, str]) -> int:
        seen.update(overrides)
        return 7

    monkeypatch.setattr("stemedb.server.run_server", fake_run_server)
    assert cli_main.serve_main(["--db-dir", "/srv/db", "--threads", "3"]) == 7
    assert seen == {"STEMEDB_DB_DIR": "/srv/db", "STEMEDB_THREADS": "3"}


def test_flag_names_follow_variables() -> None:
    assert cli_serve.flag_for("STEMEDB_GROUP_COMMIT_MAX_DELAY_MS") == "--group-commit-max-delay-ms"


def test_configuration_doc_lists_every_variable() -> None:
    from pathlib import Path

    doc = Path(__file__).parents[2] / "docs" / "operations" / "configuration.md"
    text = doc.read_text()
    missing = [v for v in sorted(KNOWN_VARIABLES) if f"`{v}`" not in text]
    assert not missing, f"undocumented in {doc}: {missing}"
