"""Issue #6 §4: `stemedb doctor` finds what the runbook's tree looks for — who holds
the port, directories the service user cannot use, a damaged journal header,
TLS expiry and key mismatch, stale backups — and says what to do."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ops_support import cli_env, make_db, run_cli

from stemedb.ops import doctor, procnet


def _doctor(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = run_cli("doctor", "--format", "json", *args, env=env)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] == (result.returncode == 0)
    return result.returncode, report["findings"]


def _find(findings: list[dict[str, Any]], check: str) -> list[dict[str, Any]]:
    return [f for f in findings if f["check"] == check]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthy_setup_passes(tmp_path: Path) -> None:
    make_db(tmp_path / "db", (3,))
    (tmp_path / "wal").mkdir()
    env = cli_env(tmp_path, {"STEMEDB_BIND_ADDR": f"127.0.0.1:{_free_port()}"})
    assert run_cli("backup", env=env).returncode == 0
    code, findings = _doctor(env)
    assert code == 0, findings
    statuses = {f["check"]: f["status"] for f in findings}
    assert statuses["port"] == statuses["journal"] == statuses["backup"] == "ok"
    assert statuses["db_dir"] == statuses["wal_dir"] == "ok"
    assert statuses["tls"] == "skip"
    table = run_cli("doctor", env=env)
    assert table.returncode == 0 and "0 failed" in table.stdout
    # doctor left nothing behind (stemedb.lock is the store's, made by make_db)
    assert sorted(os.listdir(tmp_path / "db")) == ["stemedb.db", "stemedb.lock"]


def test_port_in_use_names_the_process(tmp_path: Path) -> None:
    listener = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket,time; s=socket.socket(); "
            "s.bind(('127.0.0.1', 0)); s.listen(); print(s.getsockname()[1], flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        port = int(listener.stdout.readline())
        found, owners = procnet.port_owners(port)
        assert [item.address for item in found] == ["127.0.0.1"]
        assert [o.pid for o in owners] == [listener.pid]
        env = cli_env(tmp_path, {"STEMEDB_BIND_ADDR": f"127.0.0.1:{port}"})
        code, findings = _doctor(env)
        (port_finding,) = _find(findings, "port")
        assert code == 1 and port_finding["status"] == "fail"
        assert f"pid {listener.pid}" in port_finding["detail"]
        assert f"{Path(sys.executable).name} -c import socket" in port_finding["detail"]
        assert f"kill {listener.pid}" in port_finding["action"]
        assert "server-wont-start.md §1" in port_finding["action"]
    finally:
        listener.kill()
        listener.wait()


def test_ownership_and_permissions(tmp_path: Path) -> None:
    make_db(tmp_path / "db", (2,))
    wal = tmp_path / "wal"
    wal.mkdir(mode=0o700)
    os.chown(tmp_path / "db", 65534, 65534)
    env = cli_env(tmp_path, {"STEMEDB_BIND_ADDR": f"127.0.0.1:{_free_port()}"})
    code, findings = _doctor(env)
    (db_finding,) = _find(findings, "db_dir")
    assert db_finding["status"] == "warn"
    assert "uid 65534" in db_finding["detail"] and "chown -R" in db_finding["action"]
    assert "§5" in db_finding["action"]
    if os.geteuid() != 0:
        pytest.skip("the service-user checks below need root to create the setup")
    # As root every directory is writable; ask about the account the service runs as.
    code, findings = _doctor(env, "--user", "nobody")
    assert code == 1
    (wal_finding,) = _find(findings, "wal_dir")
    assert wal_finding["status"] == "fail" and "not writable by nobody" in wal_finding["detail"]
    # The folder now belongs to nobody, but the database file inside still does not.
    (db_file,) = _find(findings, "db_dir")
    assert db_file["status"] == "fail" and "stemedb.db is not writable" in db_file["detail"]


def test_damaged_journal_header(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (2,))
    env = cli_env(tmp_path, {"STEMEDB_BIND_ADDR": f"127.0.0.1:{_free_port()}"})
    triggers = subprocess.run(
        ["sqlite3", str(db), "SELECT name FROM sqlite_master WHERE type='trigger'"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    sql = "".join(f"DROP TRIGGER {t};" for t in triggers)
    subprocess.run(
        [
            "sqlite3",
            str(db),
            sql + "UPDATE journal SET body = replace(body, "
            "'stemedb-journal', 'other-journal') WHERE seq = 0;",
        ],
        check=True,
    )
    code, findings = _doctor(env)
    (journal,) = _find(findings, "journal")
    assert code == 1 and journal["status"] == "fail"
    assert "seq 0" in journal["detail"] and "§3" in journal["action"]

    db.write_bytes(b"this is not sqlite" * 100)
    code, findings = _doctor(env)
    (journal,) = _find(findings, "journal")
    assert code == 1 and "not an SQLite database" in journal["detail"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls_expiry_and_key_match(tmp_path: Path) -> None:
    def make_cert(name: str, days: int) -> tuple[Path, Path]:
        cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                str(days),
                "-subj",
                "/CN=stemedb.test",
            ],
            check=True,
            capture_output=True,
        )
        return cert, key

    soon_cert, soon_key = make_cert("soon", 5)
    _, other_key = make_cert("other", 400)
    findings = doctor.check_tls(soon_cert, soon_key)
    by_check = {f.check: f for f in findings}
    assert by_check["tls_cert"].status == "warn"
    assert re.search(r"expires in [45]\.\d days", by_check["tls_cert"].detail)
    assert by_check["tls_key"].status == "ok"
    mismatch = {f.check: f for f in doctor.check_tls(soon_cert, other_key)}
    assert mismatch["tls_key"].status == "fail" and "does NOT match" in mismatch["tls_key"].detail
    missing = doctor.check_tls(tmp_path / "nope.pem", None)
    assert missing[0].status == "fail" and "§2" in missing[0].action
    env = cli_env(
        tmp_path,
        {
            "STEMEDB_BIND_ADDR": f"127.0.0.1:{_free_port()}",
            "STEMEDB_TLS_CERT": str(soon_cert),
            "STEMEDB_TLS_KEY": str(other_key),
        },
    )
    code, found = _doctor(env)
    assert code == 1 and _find(found, "tls_key")[0]["status"] == "fail"


def test_stale_backup_and_archive_lag(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (2,))
    env = cli_env(tmp_path, {"STEMEDB_BIND_ADDR": f"127.0.0.1:{_free_port()}"})
    old = tmp_path / "backups" / "stemedb-backup-20200101-000000"
    old.mkdir(parents=True)
    (old / "metadata.json").write_text(json.dumps({"timestamp_unix": time.time() - 27 * 3600}))
    _, findings = _doctor(env)
    (found,) = _find(findings, "backup")
    assert found["status"] == "warn" and "27.0 h ago" in found["detail"]
    (lag,) = _find(findings, "archive")
    assert lag["status"] == "ok" and "not archived" in lag["detail"]  # frames are seconds old
    report = doctor.check_archive(
        doctor.Settings(db_dir=db.parent, wal_dir=tmp_path / "wal", archive_command="true")
    )
    assert report[0].detail.startswith(f"{len(_frames(db))} frames not archived")
    assert run_cli("archive", env=env).returncode == 0
    _, findings = _doctor(env)
    assert _find(findings, "archive")[0]["detail"].startswith("0 frames not archived")


def _frames(db: Path) -> list[int]:
    out = subprocess.run(
        ["sqlite3", str(db), "SELECT seq FROM journal"], check=True, capture_output=True, text=True
    ).stdout
    return [int(x) for x in out.split()]


def test_bad_configuration_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    env = cli_env(tmp_path, {"STEMEDB_THREADS": "lots", "STEMEDB_BIND_ADDR": "127.0.0.1:1"})
    code, findings = _doctor(env)
    (config,) = _find(findings, "configuration")
    assert code == 1 and "STEMEDB_THREADS" in config["detail"]
    assert _find(findings, "port")  # the other checks still ran


LISTENER = (
    "import socket, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
    "print(s.getsockname()[1], flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_process_whose_path_says_stemedb_is_not_taken_for_the_server(tmp_path: Path) -> None:
    """Issue 15 item 1: a checkout in ~/src/stemedb made every listener look like ours."""
    script = tmp_path / "stemedb" / "stemedb-checkout" / "listener.py"
    script.parent.mkdir(parents=True)
    script.write_text(LISTENER)
    listener = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=script.parent
    )
    try:
        assert listener.stdout is not None
        port = int(listener.stdout.readline())
        env = cli_env(tmp_path, {"STEMEDB_BIND_ADDR": f"127.0.0.1:{port}"})
        code, findings = _doctor(env)
        (port_finding,) = _find(findings, "port")
        assert code == 1 and port_finding["status"] == "fail", port_finding
        assert f"pid {listener.pid}" in port_finding["detail"]
        assert "StemeDB server" not in port_finding["detail"]
        assert f"kill {listener.pid}" in port_finding["action"]
    finally:
        listener.kill()
        listener.wait()


def test_a_real_server_is_recognised_by_asking_it(tmp_path: Path, run_server_process: Any) -> None:
    """The server is identified by its /v1/health answer and the data directory's lock."""
    server = run_server_process()
    port = int(server.url.rsplit(":", 1)[1])
    env = cli_env(tmp_path, {"STEMEDB_BIND_ADDR": f"127.0.0.1:{port}"})
    code, findings = _doctor(env)
    (port_finding,) = _find(findings, "port")
    assert code == 0 and port_finding["status"] == "warn", port_finding
    assert f"held by a StemeDB server: pid {server.pid}" in port_finding["detail"]
    (lock,) = _find(findings, "lock")
    assert lock["status"] == "ok" and f"port {port}" in lock["detail"], lock
    assert doctor.is_stemedb_server("127.0.0.1", port)
    # Served from another port, the lock holder is named as what blocks a start (§6).
    other = _free_port()
    _, findings = _doctor(cli_env(tmp_path, {"STEMEDB_BIND_ADDR": f"127.0.0.1:{other}"}))
    (lock,) = _find(findings, "lock")
    assert lock["status"] == "warn" and f"pid {server.pid}" in lock["detail"], lock
    assert "server-wont-start.md §6" in lock["action"]
