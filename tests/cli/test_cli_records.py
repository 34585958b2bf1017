"""`stemedb keygen / assert / query / skeptic / demo` as a user runs them: subprocesses
against a real server, checking stdout, stderr and exit codes (0 ok, 1 failure, 2 usage)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stemedb import demo_data
from stemedb.cli.main import main
from stemedb.client import Client
from stemedb.crypto import public_key_hex, read_key_file

T = demo_data.T
PAIR = (demo_data.SUBJECT, demo_data.PREDICATE)


def cli(
    *args: str, env: dict[str, str], input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stemedb.cli.main", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_env(home: Path, url: str = "", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    env["HOME"] = str(home)
    if url:
        env["STEMEDB_URL"] = url
    env.update(extra)
    return env


def out(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def env(server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A user with a key and STEMEDB_URL set, the demo loaded once."""
    home = tmp_path_factory.mktemp("home")
    environment = cli_env(home, server.url)
    out(cli("keygen", env=environment))
    out(cli("demo", env=environment))
    return environment


# ---- keygen ----------------------------------------------------------------------


def test_keygen_writes_a_private_key_and_prints_its_agent_id(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    made = out(cli("keygen", env=env))
    path = tmp_path / ".config" / "stemedb" / "key"
    assert made["key_file"] == str(path)
    assert made["agent_id"] == public_key_hex(read_key_file(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()

    again = cli("keygen", env=env)
    assert again.returncode == 1
    assert "already exists" in again.stderr and made["agent_id"] in again.stderr
    assert path.read_bytes() == before

    replaced = out(cli("keygen", "--force", env=env))
    assert replaced["agent_id"] != made["agent_id"]
    other = out(cli("keygen", "--out", str(tmp_path / "k2"), env=env))
    assert other["key_file"] == str(tmp_path / "k2")


# ---- assert ----------------------------------------------------------------------


def test_assert_signs_and_a_repeat_answers_exists(env: dict[str, str]) -> None:
    args = ("assert", "tests/cli/a", "colour", "blue", "--confidence", "0.8")
    first = out(cli(*args, "--timestamp", str(T), "--source", "pubmed://1", env=env))
    assert first["status"] == "created" and len(first["hash"]) == 64
    again = out(
        cli(*args, "--timestamp", "2023-11-14T22:13:20Z", "--source", "pubmed://1", env=env)
    )
    assert again == {**first, "status": "exists"}
    stored = Client(env["STEMEDB_URL"]).assertion(first["hash"])
    key = read_key_file(Path(env["HOME"]) / ".config" / "stemedb" / "key")
    assert stored["agent_id"] == public_key_hex(key)
    assert stored["source_class"] == "Clinical" and stored["timestamp"] == T


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [("Number", "2.5", 2.5), ("Number", "7", 7), ("Boolean", "no", False), ("Text", "7", "7")],
)
def test_assert_reads_value_by_type(
    env: dict[str, str], kind: str, text: str, expected: Any
) -> None:
    made = out(
        cli("assert", "tests/cli/t", kind, text, "--confidence", "1", "--type", kind, env=env)
    )
    stored = Client(env["STEMEDB_URL"]).assertion(made["hash"])
    assert stored["object"] == {"type": kind, "value": expected}


def test_assert_table_format(env: dict[str, str]) -> None:
    result = cli(
        "assert", "tests/cli/f", "p", "v", "--confidence", ".5", "--format", "table", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "status" in result.stdout and "created" in result.stdout


def test_usage_errors_exit_2(env: dict[str, str]) -> None:
    result = cli(env=env)
    assert result.returncode == 2 and "COMMAND" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("assert", "a/b", "p", "v"),
        ("assert", "a/b", "p", "v", "--confidence", "1.5"),
        ("assert", "a/b", "p", "x", "--confidence", "1", "--type", "Number"),
        ("query", "a/b", "--as-of", "yesterday"),
        ("import", "x.ndjson", "--db", "d", "--url", "http://127.0.0.1:1"),
        ("nonsense",),
    ],
)
def test_bad_arguments_exit_2_in_process(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The same entry point as the `stemedb` script, without a process per case."""
    assert main(list(args)) == 2
    assert capsys.readouterr().err


def test_assert_without_a_key_says_how_to_make_one(server: Any, tmp_path: Path) -> None:
    result = cli("assert", "a/b", "p", "v", "--confidence", "1", env=cli_env(tmp_path, server.url))
    assert result.returncode == 1
    assert "stemedb keygen" in result.stderr and "Traceback" not in result.stderr


def test_invalid_input_is_reported_with_its_field(env: dict[str, str]) -> None:
    result = cli("assert", "a//b", "p", "v", "--confidence", "1", env=env)
    assert result.returncode == 1
    assert "subject" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_server_is_a_failure_not_a_traceback(env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli("skeptic", *PAIR, "--url", f"http://127.0.0.1:{port}", env=env)
    assert result.returncode == 1
    assert "connection refused" in result.stderr and "Traceback" not in result.stderr


# ---- query and skeptic -------------------------------------------------------------


def test_query_lenses_in_every_format(env: dict[str, str]) -> None:
    ids = demo_data.build().ids
    lens = ("query", demo_data.SUBJECT, "-p", demo_data.PREDICATE, "--lens")
    assert out(cli(*lens, "authority", env=env))["results"][0]["winner"]["hash"] == ids["A"]
    table = cli(*lens, "authority", "--format", "table", env=env)
    assert table.returncode == 0 and "gastroparesis_warning" in table.stdout
    assert ids["A"][:12] in table.stdout
    rows = cli(*lens, "recency", "--format", "ndjson", env=env).stdout.splitlines()
    assert [json.loads(r)["winner"]["hash"] for r in rows] == [ids["D"]]  # full hashes
    early = out(cli(*lens, "recency", "--as-of", "2023-11-14T22:13:21Z", env=env))
    assert early["results"][0]["winner"]["hash"] == ids["B"]


def test_query_lists_and_follows_cursors(env: dict[str, str]) -> None:
    page = out(cli("query", demo_data.SUBJECT, "--limit", "2", env=env))
    assert page["count"] == 2 and page["next_cursor"]
    every = out(cli("query", demo_data.SUBJECT, "--limit", "2", "--all", env=env))
    assert len(every) == page["count"] + len(every) - 2 and len(every) >= 9
    table = cli("query", demo_data.SUBJECT, "-p", demo_data.PREDICATE, "--format", "table", env=env)
    assert "4 assertion(s)" in table.stdout and "no_gastroparesis_signal" in table.stdout


def test_skeptic_shows_the_contest(env: dict[str, str]) -> None:
    answer = out(cli("skeptic", *PAIR, env=env))
    assert answer["status"] == "Contested" and len(answer["claims"]) == 3
    table = cli("skeptic", *PAIR, "--format", "table", env=env)
    assert table.returncode == 0
    assert table.stdout.startswith(f"{demo_data.SUBJECT} {demo_data.PREDICATE}: Contested")
    assert "no_gastroparesis_signal" in table.stdout and "Regulatory:1" in table.stdout


# ---- demo ------------------------------------------------------------------------------


def test_demo_is_idempotent_and_says_what_to_try(
    run_server_process: Callable[..., Any], tmp_path: Path
) -> None:
    proc = run_server_process()
    env = cli_env(tmp_path, proc.url)
    first = out(cli("demo", env=env))
    total = len(demo_data.build().records)
    assert (first["records"], first["created"], first["exists"]) == (total, total, 0)
    assert any(command.startswith("stemedb skeptic") for command in first["next"])
    assert all(f"--url {proc.url}" in c for c in first["next"] if c.startswith("stemedb"))
    second = cli("demo", "--format", "table", env=env)
    assert second.returncode == 0
    assert "already loaded" in second.stdout and "stemedb query ozempic" in second.stdout
    assert Client(proc.url).health()["journal_seq"] == total
