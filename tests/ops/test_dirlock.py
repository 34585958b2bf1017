"""Issue 14 item 5: one writer process per data directory, for the whole of its run.

Real processes throughout: `stemedb serve` on port 0, the CLI as a subprocess.
Before the lock, a second server on the same files started "healthy" at seq 0
and failed every write; a server started during `import --db` did the same;
and one started while `restore --force` built its copy acknowledged writes
that the replaced file then lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ops_support import CLI, cli_env, file_head, make_db, run_cli, signed_assertions
from serverkit import SERVE_ARGV, ServerProcess, StartServer, http_json, server_env

from stemedb.ops import backup
from stemedb.store import dirlock

SECTION = "server-wont-start.md §6"


def _poll(condition: object, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _held_by(db_dir: Path, pid: int) -> bool:
    found = dirlock.holder(db_dir)
    return found is not None and found.pid == pid


def _second_server(tmp_path: Path, name: str) -> ServerProcess:
    """A second `stemedb serve` on tmp_path's files; returns once it has exited."""
    proc = ServerProcess(SERVE_ARGV, server_env(tmp_path), tmp_path, tmp_path / f"{name}.log")
    proc.wait(60)
    return proc


def _assert_refused(output: str, returncode: int | None, holder_pid: int) -> None:
    assert returncode == 1, output
    assert f"pid {holder_pid}" in output and SECTION in output, output
    assert "Traceback" not in output, output
    assert "[4/10] data directories: FAILED: data directory" in output, output


def test_second_server_exits_1_naming_the_first(
    tmp_path: Path, run_server_process: StartServer
) -> None:
    first = run_server_process()
    status, _, body = http_json("POST", first.url + "/v1/assert/batch", signed_assertions(3, "a"))
    assert status == 200, body
    seq_before = file_head(tmp_path / "db" / "stemedb.db")[0]
    assert _held_by(tmp_path / "db", first.pid)

    second = _second_server(tmp_path, "second")
    _assert_refused(second.output, second.returncode, first.pid)
    assert "stemedb serve" in second.output  # the holder's command, from the lock file
    # The first server is untouched and still takes writes at the right seq.
    status, _, body = http_json("POST", first.url + "/v1/assert/batch", signed_assertions(2, "b"))
    assert status == 200 and all(r["status"] == "created" for r in body["results"]), body
    assert file_head(tmp_path / "db" / "stemedb.db")[0] == seq_before + 2


def test_offline_writers_refuse_while_the_server_runs(
    tmp_path: Path, run_server_process: StartServer
) -> None:
    server = run_server_process()
    status, _, _ = http_json("POST", server.url + "/v1/assert/batch", signed_assertions(4, "c"))
    assert status == 200
    env = cli_env(tmp_path)
    db = tmp_path / "db" / "stemedb.db"
    head = file_head(db)
    made = backup.backup(db, tmp_path / "backups")  # the online API: allowed while serving
    source = tmp_path / "in.ndjson"
    source.write_text("")
    refusals = {
        "import": run_cli("import", source, "--db", tmp_path / "db", env=env),
        "reindex": run_cli("reindex", env=env),
        "migrate": run_cli("migrate", env=env),
        "restore": run_cli("restore", made.path, "--target", db, "--force", env=env),
    }
    for command, result in refusals.items():
        assert result.returncode == 1, (command, result.stderr)
        line = result.stderr.strip().splitlines()[-1]
        assert f"pid {server.pid}" in line and SECTION in line, (command, result.stderr)
        assert "Traceback" not in result.stderr, (command, result.stderr)
    assert file_head(db) == head  # nothing replaced or written
    # Read-only commands still work next to the server.
    assert run_cli("verify", env=env).returncode == 0
    assert run_cli("backup", env=env).returncode == 0
    exported = run_cli("export", "--url", server.url, env=env)
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) >= 4
    status, _, health = http_json("GET", server.url + "/v1/health")
    assert status == 200 and health["journal_seq"] == head[0]


def test_server_refuses_while_import_db_runs(tmp_path: Path) -> None:
    """`import --db -` holds the lock from before its first line until it exits."""
    make_db(tmp_path / "db", (2,))
    env = cli_env(tmp_path)
    importer = subprocess.Popen(
        [*CLI, "import", "-", "--db", str(tmp_path / "db"), "--jobs", "1"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _poll(lambda: _held_by(tmp_path / "db", importer.pid), what="the import's lock")
        server = _second_server(tmp_path, "during-import")
        _assert_refused(server.output, server.returncode, importer.pid)
        assert "stemedb import --db" in server.output
        assert importer.stdin is not None
        importer.stdin.close()  # end of input: the import finishes and lets go
        assert importer.wait(60) == 0, importer.stderr.read() if importer.stderr else ""
    finally:
        if importer.poll() is None:
            importer.kill()
            importer.wait()
    assert dirlock.holder(tmp_path / "db") is None


RESTORE_WITH_PAUSE = """
import sys, time
from pathlib import Path
import stemedb.ops.restore as r
flag, go = Path(sys.argv[1]), Path(sys.argv[2])
original = r._replay
def paused(*args):
    flag.touch()
    while not go.exists():
        time.sleep(0.02)
    return original(*args)
r._replay = paused
from stemedb.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def test_server_refuses_while_restore_builds_its_copy(tmp_path: Path) -> None:
    """The old failure: a server started mid-restore acknowledged writes that were lost."""
    db = make_db(tmp_path / "db", (3,))
    made = backup.backup(db, tmp_path / "backups")
    flag, go = tmp_path / "paused", tmp_path / "go"
    argv = ["restore", str(made.path), "--target", str(db), "--force"]
    restorer = subprocess.Popen(
        [sys.executable, "-c", RESTORE_WITH_PAUSE, str(flag), str(go), *argv],
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _poll(flag.exists, what="restore to reach its replay")
        assert _held_by(tmp_path / "db", restorer.pid)
        server = _second_server(tmp_path, "during-restore")
        _assert_refused(server.output, server.returncode, restorer.pid)
        go.touch()
        _, err = restorer.communicate(timeout=60)
        assert restorer.returncode == 0, err
    finally:
        if restorer.poll() is None:
            restorer.kill()
            restorer.wait()
    assert dirlock.holder(tmp_path / "db") is None


def test_kill_9_of_the_holder_frees_the_lock(
    tmp_path: Path, run_server_process: StartServer
) -> None:
    first = run_server_process()
    assert _held_by(tmp_path / "db", first.pid)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(20)
    assert dirlock.holder(tmp_path / "db") is None  # the kernel dropped it with the process
    second = run_server_process()
    assert second.returncode is None and second.url
    assert _held_by(tmp_path / "db", second.pid)
    status, _, _ = http_json("POST", second.url + "/v1/assert/batch", signed_assertions(2, "k"))
    assert status == 200


def test_lock_is_reentrant_in_a_process_and_exclusive_between_processes(tmp_path: Path) -> None:
    lock = dirlock.acquire(tmp_path, "test holder")
    again = dirlock.acquire(tmp_path)  # the server's step 4, then its store at step 5
    probe = (
        "import sys; from pathlib import Path; from stemedb.store import dirlock\n"
        "try:\n    dirlock.acquire(Path(sys.argv[1]))\n"
        "except dirlock.DirectoryLocked as e:\n    print(e); sys.exit(3)\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True
    )
    assert other.returncode == 3 and f"pid {os.getpid()} (test holder)" in other.stdout
    lock.release()
    assert _held_by(tmp_path, os.getpid())  # still held once
    again.release()
    assert dirlock.holder(tmp_path) is None
    other = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True
    )
    assert other.returncode == 0, other.stdout
