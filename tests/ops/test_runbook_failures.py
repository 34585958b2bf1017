"""Issue 14 item 7: the runbook's own failure cases give their one line, never a traceback.

Each case is made for real (root in CI): a loop-mounted ext4 filled to the
last block, a database owned by root with the server run as `nobody`, a tmpfs
remounted read-only, a tmpfs too small for a backup. Before: "[5/10]
unexpected error" with an apsw.IOError traceback (doctor: "corruption"),
"[6/10] unexpected error" with apsw.ReadOnlyError, doctor "writable" on a
read-only mount, and HTTP 500 `internal` / a CLI traceback for a full backup
destination.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ops_support import cli_env, make_db, run_cli, signed_assertions
from serverkit import SERVE_ARGV, ServerProcess, StartServer, http_json, server_env

RUNBOOK = "docs/operations/runbooks/server-wont-start.md"


def _need_root() -> None:
    if os.geteuid() != 0:  # CI runs as root; these cases need mount(8) and another user
        pytest.fail("these runbook cases need root (mount, setpriv); CI runs as root")


def _mount(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    _need_root()
    path.mkdir(parents=True, exist_ok=True)
    _mount(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def _small_ext4(tmp_path: Path) -> Iterator[Path]:
    _need_root()
    image, mount = tmp_path / "disk.img", tmp_path / "small"
    mount.mkdir()
    with open(image, "wb") as out:
        out.truncate(32 << 20)
    _mount(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)])
    _mount(["mount", "-o", "loop", str(image), str(mount)])
    try:
        yield mount
    finally:
        _umount(mount)


def _fill(directory: Path) -> Path:
    """Write a ballast file until ENOSPC, in ever smaller pieces: not one block left."""
    ballast = directory / "ballast"
    chunk = b"\xa5" * (1 << 20)
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1 << 9):
            while True:
                try:
                    os.write(fd, chunk[:size])
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    assert shutil.disk_usage(directory).free < (64 << 10)
    return ballast


def _start_fails(tmp_path: Path, env: dict[str, str], name: str, **popen: Any) -> str:
    """Start `stemedb serve`; it must exit 1 with one FAILED line and no traceback."""
    proc = ServerProcess(
        popen.get("argv", SERVE_ARGV), server_env(tmp_path, env), tmp_path, tmp_path / name
    )
    assert proc.wait(60) == 1, proc.output
    output = proc.output
    assert "Traceback" not in output and "unexpected error" not in output, output
    (failed,) = [line for line in output.splitlines() if "FAILED" in line]
    return failed


def _doctor(env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    result = run_cli("doctor", "--format", "json", env=env)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    by_check: dict[str, list[dict[str, Any]]] = {}
    for finding in json.loads(result.stdout)["findings"]:
        by_check.setdefault(finding["check"], []).append(finding)
    return by_check


def test_start_on_a_full_disk(tmp_path: Path, run_server_process: StartServer) -> None:
    with _small_ext4(tmp_path) as mount:
        env = {"STEMEDB_DB_DIR": str(mount / "db")}
        server = run_server_process(env)
        records = signed_assertions(20, "f")
        status, _, body = http_json("POST", server.url + "/v1/assert/batch", records)
        assert status == 200, body
        assert server.stop() == 0
        ballast = _fill(mount)
        line = _start_fails(tmp_path, env, "full.log")
        assert "[5/10] open the journal: FAILED:" in line, line
        assert f"the disk holding {mount / 'db'} is full" in line and f"{RUNBOOK} §4" in line
        findings = _doctor(cli_env(tmp_path, env))
        (journal,) = findings["journal"]
        assert journal["status"] == "fail" and "is full" in journal["detail"], journal
        assert "§4" in journal["action"] and "§3" not in journal["action"], journal
        assert any(f["status"] == "fail" for f in findings["disk_space"])
        ballast.unlink()  # space is back: the same files start, nothing to repair
        again = run_server_process(env)
        assert again.returncode is None and again.url, again.output


def test_database_owned_by_root_with_the_server_running_as_nobody(tmp_path: Path) -> None:
    _need_root()
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="stemedb-owner-", dir="/tmp"))  # nobody can reach it
    try:
        os.chmod(base, 0o755)
        make_db(base / "db", (2,))  # as root: stemedb.db (and stemedb.lock) owned by root
        (base / "wal").mkdir()
        for path in (base, base / "db", base / "wal"):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        assert (base / "db" / "stemedb.db").stat().st_uid == 0
        as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}"]
        # CAP_DAC_READ_SEARCH lets `nobody` read the checkout and its venv wherever they
        # live (a 0700 home or mktemp dir); it grants no write, which is what is tested.
        read_anywhere = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
        argv = [*as_nobody, "--clear-groups", *read_anywhere, *SERVE_ARGV]
        env = {"STEMEDB_DB_DIR": str(base / "db"), "STEMEDB_WAL_DIR": str(base / "wal")}
        line = _start_fails(base, env, "owner.log", argv=argv)
        assert "[5/10] open the journal: FAILED:" in line, line
        assert "stemedb.db is not writable by nobody" in line and "owned by root" in line
        assert f"{RUNBOOK} §5" in line
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_read_only_file_system(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "16m") as mount:
        make_db(mount / "db", (2,))
        env = {"STEMEDB_DB_DIR": str(mount / "db")}
        assert _doctor(cli_env(tmp_path, env))["db_dir"][0]["status"] == "ok"
        _mount(["mount", "-o", "remount,ro", str(mount)])
        line = _start_fails(tmp_path, env, "ro.log")
        assert "[4/10] data directories: FAILED:" in line, line
        assert "read-only file system" in line and f"{RUNBOOK} §5" in line
        (db_dir,) = _doctor(cli_env(tmp_path, env))["db_dir"]
        assert db_dir["status"] == "fail" and "read-only file system" in db_dir["detail"]
        assert "§5" in db_dir["action"]
        source = tmp_path / "in.ndjson"
        source.write_text("")
        for argv in (["reindex"], ["migrate"], ["import", str(source), "--db", str(mount / "db")]):
            result = run_cli(*argv, env=cli_env(tmp_path, env))
            assert result.returncode == 1, (argv, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr, (argv, result.stderr)
            (line,) = result.stderr.strip().splitlines()
            assert "read-only file system" in line and "§5" in line, (argv, line)


def test_full_backup_destination(tmp_path: Path, run_server_process: StartServer) -> None:
    db = make_db(tmp_path / "db", (400, 400))
    assert db.stat().st_size > 600 << 10
    with _tmpfs(tmp_path / "backups", "256k") as dest:
        env = cli_env(tmp_path)
        result = run_cli("backup", env=env)
        assert result.returncode == 1, result.stdout
        assert "Traceback" not in result.stderr, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert f"backup destination {dest} is full" in line and "disk-full.md" in line
        assert os.listdir(dest) == []  # the partial copy was removed
        server = run_server_process()
        status, _, body = http_json("POST", server.url + "/v1/admin/backup")
        assert status == 507, body
        assert body["error"]["code"] == "insufficient_storage"
        assert "is full" in body["error"]["message"]
        assert os.listdir(dest) == []
        status, _, health = http_json("GET", server.url + "/v1/health")
        assert status == 200 and health["status"] == "healthy"
