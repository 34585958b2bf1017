"""`stemedb import --db` with validation in worker processes (`--jobs`).

What must not change when the work is spread over processes: the database
content (the same frames in the same order, the same projections, a verified
chain), the per-line rejection report, and resuming after `kill -9`. Every
import here runs the real CLI in a subprocess against a stopped database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import apsw
import pytest
from test_cli_transfer import cli, cli_env, kill_import_midway, summary

from stemedb import demo_data
from stemedb.crypto import generate_signing_key, write_key_file
from stemedb.signing import make_assertion, sign_record
from stemedb.store.projections import PROJECTION_TABLES

T = demo_data.T


def mixed_lines(count: int) -> tuple[list[str], dict[int, str]]:
    """Every record kind (the demo data), `count` assertions, and bad lines spread
    over the file; returns the lines and {line number: expected error code}."""
    seed = generate_signing_key()
    lines = [json.dumps(r) for r in demo_data.build().records]
    lines += [
        json.dumps(make_assertion(seed, f"tests/pipeline/{i % 7}", "p", i, 0.5, now_s=T))
        for i in range(count)
    ]
    good = json.loads(lines[-1])
    dangling_vote = sign_record(
        "vote", {"assertion_hash": "ab" * 32, "weight": 1, "timestamp": T}, [seed], now_s=T
    )
    bad = [
        (5, "{not json", "invalid_json"),
        (40, json.dumps({"subject": "a/b"}), "invalid_request"),
        (count // 2, json.dumps({**good, "confidence": 0.25}), "invalid_signature"),
        (count // 2 + 1, json.dumps(dangling_vote), "not_found"),  # rejected by the store
        (count - 3, "[1, 2]", "invalid_request"),
    ]
    for index, text, _ in bad:
        lines.insert(index, text)
    lines.insert(60, "")  # blank lines are skipped but counted
    lines.insert(61, lines[100])  # a duplicate answers `exists`
    expected = {lines.index(text) + 1: code for _, text, code in bad}
    return lines, expected


def import_db(
    source: Path, db: Path, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return cli("import", str(source), "--db", str(db), "--chunk-size", "200", *extra, env=env)


def content(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The journal (without the per-database header) and every projection, leaving out
    the wall-clock columns (written_ms and the chain that hashes it)."""
    conn = apsw.Connection(str(db / "stemedb.db"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        tables = {
            "journal": conn.execute(
                "SELECT seq, kind, hash, body FROM journal WHERE seq > 0 ORDER BY seq"
            ).fetchall()
        }
        for table in PROJECTION_TABLES:
            columns = [
                row[1]
                for row in conn.execute(f"PRAGMA table_info({table})")
                if not str(row[1]).endswith("written_ms")  # written_ms, first_written_ms, ...
            ]
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            tables[table] = sorted(map(tuple, rows), key=repr)
        return tables
    finally:
        conn.close()


def verify_full(db: Path, env: dict[str, str]) -> None:
    result = cli("verify", "--full", "--db", str(db / "stemedb.db"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def rejected_lines(stderr: str) -> dict[int, str]:
    found = {}
    for line in stderr.splitlines():
        if line.startswith("line "):
            number, code, _ = line[len("line ") :].split(": ", 2)
            found[int(number)] = code
    return found


def test_parallel_import_matches_one_process_exactly(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    lines, expected = mixed_lines(1500)
    source = tmp_path / "mixed.ndjson"
    source.write_text("\n".join(lines) + "\n")
    runs = {}
    for jobs in ("1", "2", "3"):
        db, rejects = tmp_path / f"db{jobs}", tmp_path / f"rejects{jobs}.ndjson"
        extra = ("--jobs", jobs, "--rejects", str(rejects), "--progress-file", str(db) + ".p")
        result = import_db(source, db, env, *extra)
        assert result.returncode == 1, result.stderr  # 1: some lines were rejected
        verify_full(db, env)
        runs[jobs] = (result, rejects.read_text(), content(db))

    one, one_rejects, one_content = runs["1"]
    counts = summary(one)
    assert (counts["rejected"], counts["exists"], counts["lines"]) == (5, 1, len(lines))
    assert counts["created"] == len(lines) - 1 - 5 - 1
    assert rejected_lines(one.stderr) == expected
    assert len(one_content["journal"]) == counts["created"]
    for jobs in ("2", "3"):
        result, rejects, tables = runs[jobs]
        db = tmp_path / f"db{jobs}"
        assert summary(result) == counts | {"target": str(db), "progress_file": str(db) + ".p"}
        # Same report, same order. Replace the whole path: a hash in the report may
        # contain "db2" (that made this test fail once in a few hundred runs).
        assert result.stderr.replace(str(db), str(tmp_path / "db1")) == one.stderr
        assert rejects == one_rejects
        assert tables == one_content


def test_a_killed_parallel_import_resumes_to_the_complete_database(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    env["TMPDIR"] = str(tmp_path / "tmp")  # where the workers' spool folders go
    (tmp_path / "tmp").mkdir()
    lines, expected = mixed_lines(4000)
    source = tmp_path / "big.ndjson"
    source.write_text("\n".join(lines) + "\n")
    progress = Path(str(source) + ".progress")
    db = tmp_path / "db"
    done_before = kill_import_midway(
        [str(source), "--db", str(db), "--chunk-size", "100", "--jobs", "2"],
        progress,
        500,
        len(lines),
        env,
    )
    assert_workers_gone(source)
    assert [p.name[:15] for p in (tmp_path / "tmp").iterdir()] == ["stemedb-import-"]

    resumed = cli(
        "import",
        str(source),
        "--db",
        str(db),
        "--resume",
        "--chunk-size",
        "100",
        "--jobs",
        "2",
        env=env,
    )
    assert list((tmp_path / "tmp").iterdir()) == []  # the killed import's spool is gone too
    counts = summary(resumed)
    assert counts["skipped_lines"] == done_before
    assert counts["exists"] <= 100 + 1  # at most the chunk being committed, and the duplicate
    assert rejected_lines(resumed.stderr) == {n: c for n, c in expected.items() if n > done_before}
    verify_full(db, env)

    fresh = tmp_path / "fresh"
    whole = import_db(source, fresh, env, "--jobs", "1", "--progress-file", str(fresh) + ".p")
    assert summary(whole)["created"] == len(content(fresh)["journal"])
    assert content(db) == content(fresh)  # nothing lost, nothing twice, same order
    assert json.loads(progress.read_text())["done"] is True


def assert_workers_gone(source: Path) -> None:
    """Worker processes of a killed importer exit on their own (their task pipe closes)."""
    deadline = time.monotonic() + 10
    while True:
        left = [pid for pid in _pids() if str(source).encode() in _cmdline(pid)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"orphaned import workers: {left}"


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_signing_from_stdin_in_workers_gives_the_same_ids(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    rows = [
        {"subject": "tests/signed", "predicate": "p", "object": i, "confidence": 1}
        for i in range(300)
    ]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    assert cli("import", "-", "--db", str(tmp_path / "db"), "--jobs", "0", env=env).returncode == 2
    key = tmp_path / "key"
    write_key_file(key, generate_signing_key())
    dbs = []
    for jobs in ("1", "2"):
        db = tmp_path / f"signed{jobs}"
        args = ("--jobs", jobs, "--sign", "--key", str(key), "--timestamp", str(T))
        result = cli(
            "import", "-", "--db", str(db), "--chunk-size", "40", *args,
            "--progress-file", str(db) + ".p", env=env, input=text,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert summary(result)["created"] == 300
        dbs.append(content(db))
    assert dbs[0] == dbs[1]  # same key, same fixed timestamp: identical ids either way


def test_a_worker_that_dies_fails_the_import_instead_of_hanging(tmp_path: Path) -> None:
    """A killed worker (the OOM killer) must stop the import with a message, not hang
    it; the committed chunks stay and --resume continues."""
    from stemedb.cli.import_pipeline import PrepareConfig, PreparePool
    from stemedb.cli.remote import CliError
    from stemedb.config import Settings

    seed = generate_signing_key()
    raws = [
        json.dumps(make_assertion(seed, "tests/dies", "p", i, 0.5, now_s=T)).encode()
        for i in range(500)
    ]
    pool = PreparePool(PrepareConfig(Settings(), None, T), 2)
    try:
        assert len(pool.pids) == 2
        pending = [pool.submit(raws, T * 1000) for _ in range(40)]  # seconds of work
        assert pending[0].get()[0][0] == "assertion"
        os.kill(pool.pids[0], signal.SIGKILL)
        with pytest.raises(CliError, match="worker process died"):
            for chunk in pending[1:]:
                chunk.get()
    finally:
        pool.close(finished=False)


def test_a_pieces_results_cross_the_shared_pipe_as_a_short_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a path shorter than PIPE_BUF goes through the executor's shared result pipe
    (an atomic write: a worker killed mid-result cannot leave half a message there and
    hang the import); the results themselves come back whole from the spool file."""
    import pickle
    import select

    from stemedb.cli import import_pipeline
    from stemedb.config import Settings

    seed = generate_signing_key()
    raws = [
        json.dumps(make_assertion(seed, "tests/spool", "p", i, 0.5, now_s=T)).encode()
        for i in range(250)
    ]
    raws.append(b"{not json")
    preparer = import_pipeline.Preparer(import_pipeline.PrepareConfig(Settings(), None, T))
    monkeypatch.setattr(import_pipeline, "_worker", preparer)
    monkeypatch.setattr(import_pipeline, "_spool", str(tmp_path))
    path = import_pipeline._prepare_piece(raws, T * 1000)
    assert len(pickle.dumps(path)) < select.PIPE_BUF
    direct = preparer.lines(raws, T * 1000)
    assert len(pickle.dumps(direct)) > 16 * select.PIPE_BUF  # what used to cross the pipe
    assert import_pipeline._load_piece(path) == direct
    assert list(tmp_path.iterdir()) == []  # read once, then gone
