"""`stemedb export` and `stemedb import`: round trips with ids intact, straight-to-file
import into a stopped database, rejection reports, signing on the fly, and resuming
after the importer is killed mid-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stemedb import demo_data
from stemedb.client import Client
from stemedb.crypto import generate_signing_key, write_key_file
from stemedb.signing import make_assertion

T = demo_data.T
CLI = (sys.executable, "-m", "stemedb.cli.main")


def cli_env(home: Path, url: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    env["HOME"] = str(home)
    if url:
        env["STEMEDB_URL"] = url
    return env


def cli(
    *args: str, env: dict[str, str], input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, input=input, capture_output=True, text=True, timeout=120
    )


def summary(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def kill_import_midway(
    args: list[str], progress: Path, at_least: int, total: int, env: dict[str, str]
) -> int:
    """Start `stemedb import ARGS`, `kill -9` it once `at_least` lines are committed
    (per its progress sidecar), and return how many lines it had committed."""
    importer = subprocess.Popen(
        [*CLI, "import", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if progress.exists() and json.loads(progress.read_text())["lines"] >= at_least:
            break
        time.sleep(0.005)
    importer.send_signal(signal.SIGKILL)
    importer.wait(10)
    done_before = int(json.loads(progress.read_text())["lines"])
    assert importer.returncode == -signal.SIGKILL
    assert at_least <= done_before < total, "the importer finished before it could be killed"
    return done_before


def signed_file(path: Path, count: int, subject: str = "tests/import") -> list[dict[str, Any]]:
    seed = generate_signing_key()
    records = [make_assertion(seed, subject, "p", i, 0.5, now_s=T) for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def test_export_import_round_trip_into_a_stopped_database(
    run_server_process: Callable[..., Any], tmp_path: Path
) -> None:
    first = run_server_process()
    Client(first.url).batch(demo_data.build().records)
    env = cli_env(tmp_path, first.url)
    dump = tmp_path / "dump.ndjson"
    exported = summary(cli("export", "-o", str(dump), env=env))
    frames = Client(first.url).health()["journal_seq"]
    assert exported["records"] == frames == len(dump.read_text().splitlines())
    assert not (tmp_path / "dump.ndjson.partial").exists()

    copy_dir = tmp_path / "copy"
    result = cli("import", str(dump), "--db", str(copy_dir), env=env)
    assert result.returncode == 0, result.stderr
    counts = summary(result)
    assert (counts["created"], counts["exists"], counts["rejected"]) == (frames, 0, 0)
    assert counts["target"] == str(copy_dir)

    second = run_server_process({"STEMEDB_DB_DIR": str(copy_dir)})
    again = cli("export", "--url", second.url, env=env)
    assert again.returncode == 0
    assert again.stdout == dump.read_text()  # same records, same ids, same order

    csv = cli("export", "--format", "csv", env=env).stdout.splitlines()
    assert csv[0].startswith("hash,seq,subject,predicate")
    assert len(csv) - 1 == Client(first.url).health()["assertion_count"]
    aliases = cli("export", "--kinds", "alias", env=env).stdout.splitlines()
    assert {json.loads(line)["alias"] for line in aliases} == {"ozempic", "wegovy"}


def test_import_refuses_the_database_of_a_running_server(
    run_server_process: Callable[..., Any], tmp_path: Path
) -> None:
    proc = run_server_process()
    source = tmp_path / "in.ndjson"
    signed_file(source, 3)
    result = cli("import", str(source), "--db", str(tmp_path / "db"), env=cli_env(tmp_path))
    assert result.returncode == 1
    assert f"in use by pid {proc.pid}" in result.stderr  # the data-directory lock's holder
    assert Client(proc.url).health()["assertion_count"] == 0
    both = cli("import", str(source), "--db", "x", "--url", proc.url, env=cli_env(tmp_path))
    assert both.returncode == 2


def test_rejected_lines_are_reported_by_line_number(
    run_server_process: Callable[..., Any], tmp_path: Path
) -> None:
    proc = run_server_process()
    good = signed_file(tmp_path / "good.ndjson", 2)
    tampered = {**good[1], "confidence": 0.9}
    lines = [
        json.dumps(good[0]),
        "{not json",
        "",
        json.dumps({"subject": "a/b"}),
        json.dumps(tampered),
        json.dumps(good[1]),
    ]
    source = tmp_path / "mixed.ndjson"
    source.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.ndjson"
    result = cli("import", str(source), "--rejects", str(rejects), env=cli_env(tmp_path, proc.url))
    assert result.returncode == 1
    counts = summary(result)
    assert (counts["created"], counts["rejected"], counts["lines"]) == (2, 3, 6)
    assert "line 2: invalid_json" in result.stderr
    assert "line 4: invalid_request" in result.stderr
    assert "line 5: invalid_signature" in result.stderr
    reported = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in reported] == [2, 4, 5]
    assert reported[0]["input"] == "{not json"


def test_sign_on_the_fly_is_repeatable_through_the_progress_file(
    run_server_process: Callable[..., Any], tmp_path: Path
) -> None:
    proc = run_server_process()
    env = cli_env(tmp_path, proc.url)
    key = tmp_path / "key"
    write_key_file(key, generate_signing_key())
    rows = [
        {"subject": "tests/signed", "predicate": "p", "object": i, "confidence": 1}
        for i in range(5)
    ]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    progress = tmp_path / "stdin.progress"
    args = ("import", "-", "--sign", "--key", str(key), "--progress-file", str(progress))
    first = cli(*args, env=env, input=text)
    assert first.returncode == 0, first.stderr
    assert summary(first)["created"] == 5
    again = summary(cli(*args, env=env, input=text))
    assert (again["created"], again["exists"]) == (0, 5)  # same timestamp, same signatures
    resumed = summary(
        cli(*args, "--resume", env=env, input=text + json.dumps(rows[0] | {"object": 9}) + "\n")
    )
    assert (resumed["skipped_lines"], resumed["created"], resumed["records"]) == (5, 1, 1)
    unsigned = cli("import", "-", env=env, input=text)
    assert unsigned.returncode == 1 and "signatures" in unsigned.stderr
    assert "5 unsigned line(s) refused" in unsigned.stderr and "with --sign" in unsigned.stderr


def test_a_killed_import_resumes_where_it_stopped(
    run_server_process: Callable[..., Any], tmp_path: Path
) -> None:
    proc = run_server_process()
    env = cli_env(tmp_path, proc.url)
    source = tmp_path / "big.ndjson"
    total = 3000
    signed_file(source, total)
    progress = Path(str(source) + ".progress")
    done_before = kill_import_midway(
        [str(source), "--chunk-size", "100"], progress, 300, total, env
    )

    resumed = cli("import", str(source), "--resume", "--chunk-size", "100", env=env)
    assert resumed.returncode == 0, resumed.stderr
    counts = summary(resumed)
    assert counts["skipped_lines"] == done_before
    assert counts["created"] + counts["exists"] == total - done_before
    assert counts["exists"] <= 200  # at most the chunks in flight when it was killed
    assert Client(proc.url).health()["assertion_count"] == total

    rerun = summary(cli("import", str(source), env=env))
    assert (rerun["created"], rerun["exists"], rerun["skipped_lines"]) == (0, total, 0)
    assert json.loads(progress.read_text())["done"] is True


def test_an_unreachable_server_stops_the_import_with_a_resume_hint(tmp_path: Path) -> None:
    source = tmp_path / "in.ndjson"
    signed_file(source, 3)
    result = cli("import", str(source), "--url", "http://127.0.0.1:9", env=cli_env(tmp_path))
    assert result.returncode == 1
    assert "connection refused" in result.stderr and "--resume" in result.stderr
    assert "Traceback" not in result.stderr
    missing_key = cli(
        "import", str(source), "--sign", "--key", str(tmp_path / "nokey"), env=cli_env(tmp_path)
    )
    assert missing_key.returncode == 1 and "stemedb keygen" in missing_key.stderr
