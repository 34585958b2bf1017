"""Issue #6 §1: `stemedb backup` writes a verified, self-describing copy, keeps the
last STEMEDB_BACKUP_KEEP, never deletes anything else, and fails loudly on a
source that does not verify."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ops_support import cli_env, count, file_head, make_db, pend, run_cli

from stemedb.config import Settings
from stemedb.ops import backup
from stemedb.store import Store
from stemedb.store.verify import verify


def test_backup_cli_writes_a_verified_copy(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (15, 10))
    result = run_cli("backup", env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    meta = json.loads(result.stdout)
    folder = Path(meta["path"])
    assert folder.parent == tmp_path / "backups"
    assert backup.BACKUP_NAME.match(folder.name)
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "stemedb.db"]
    on_disk = json.loads((folder / "metadata.json").read_text())
    for key in ("version", "timestamp", "assertion_count", "journal_seq", "chain_head", "sha3_256"):
        assert on_disk[key] == meta[key]
    copy = folder / "stemedb.db"
    assert meta["sha3_256"] == hashlib.sha3_256(copy.read_bytes()).hexdigest()
    assert (meta["journal_seq"], meta["chain_head"]) == file_head(db) == file_head(copy)
    assert meta["assertion_count"] == count(db) == 27
    assert verify(copy, full=True).ok


def test_backup_is_consistent_while_writes_continue(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    store = Store(Settings(db_dir=tmp_path / "db")).open()
    stop = threading.Event()
    written: list[int] = []

    def keep_writing() -> None:
        i = 0
        while not stop.is_set():
            store.write([pend(subject=f"w/{i % 9}", object=i)])
            written.append(i)
            i += 1

    try:
        store.write([pend(subject=f"seed/{i}", object=i) for i in range(300)])
        writer = threading.Thread(target=keep_writing)
        writer.start()
        results = [backup.backup(store.path, tmp_path / "b", keep=0) for _ in range(3)]
        stop.set()
        writer.join()
    finally:
        stop.set()
        store.close()
    seqs = [r.metadata["journal_seq"] for r in results]
    assert len(written) > 0 and seqs == sorted(seqs)
    for r in results:
        copy = r.path / "stemedb.db"
        assert file_head(copy) == (r.metadata["journal_seq"], r.metadata["chain_head"])
        assert count(copy) == r.metadata["assertion_count"] == r.metadata["journal_seq"]


def _fake_backup(folder: Path, *, metadata: bool = True) -> None:
    folder.mkdir(parents=True)
    if metadata:
        (folder / "metadata.json").write_text('{"timestamp_unix": 1}')


def test_retention_keeps_newest_and_touches_nothing_else(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (3,))
    dest = tmp_path / "backups"
    decoys = [
        dest / "stemedb-backup-20000101-000000-notes",  # pattern does not match
        dest / "my-stuff",
    ]
    for decoy in decoys:
        _fake_backup(decoy)
    no_meta = dest / "stemedb-backup-20000101-000000"  # matches, but no metadata.json
    _fake_backup(no_meta, metadata=False)
    (dest / "README.txt").write_text("keep me")
    start = datetime(2031, 5, 1, 12, 0, 0, tzinfo=UTC)
    made = [backup.backup(db, dest, keep=3, now=start + timedelta(hours=h)).path for h in range(4)]
    # Two in the same second get distinct names and are ordered after the first.
    made.append(backup.backup(db, dest, keep=3, now=start + timedelta(hours=3)).path)
    assert made[-1].name == made[-2].name + "-2"
    kept = backup.list_backups(dest)
    assert kept == made[-3:]
    for gone in made[:2]:
        assert not gone.exists()
    for decoy in [*decoys, no_meta, dest / "README.txt"]:
        assert decoy.exists(), decoy
    assert backup.last_backup_timestamp(dest) == pytest.approx(
        (start + timedelta(hours=3)).timestamp()
    )


def test_retention_from_the_environment(tmp_path: Path) -> None:
    make_db(tmp_path / "db", (2,))
    env = cli_env(tmp_path, {"STEMEDB_BACKUP_KEEP": "1"})
    dest = tmp_path / "backups"
    first = json.loads(run_cli("backup", env=env).stdout)
    result = run_cli("backup", env=env)
    assert result.returncode == 0, result.stderr
    assert backup.list_backups(dest) == [Path(json.loads(result.stdout)["path"])]
    assert json.loads(result.stdout)["removed"] == [first["path"]]


def test_backup_of_a_damaged_database_fails_loudly(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (10,))
    _tamper(db, seq=4)
    result = run_cli("backup", env=cli_env(tmp_path))
    assert result.returncode == 1
    assert "FAILED" in result.stderr and "seq 4" in result.stderr
    assert backup.list_backups(tmp_path / "backups") == []
    assert list((tmp_path / "backups").iterdir()) == []  # the partial copy is gone too


def _tamper(db: Path, seq: int) -> None:
    """Drop the append-only triggers in this copy and change one frame's body."""
    triggers = subprocess.run(
        [
            "sqlite3",
            str(db),
            "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='journal'",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    drops = "".join(f"DROP TRIGGER {name};" for name in triggers)
    subprocess.run(
        [
            "sqlite3",
            str(db),
            drops + f"UPDATE journal SET body = replace(body, '0.5', '0.9') WHERE seq = {seq};",
        ],
        check=True,
    )


def test_admin_backup_endpoint_and_gauge(tmp_path: Path, run_server_process) -> None:  # type: ignore[no-untyped-def]
    from serverkit import http_json

    server = run_server_process({"STEMEDB_BACKUP_KEEP": "2"})
    _, _, text = http_json("GET", server.url + "/metrics")
    assert "stemedb_last_backup_timestamp_seconds 0.0" in text
    status, _, body = http_json(
        "POST", server.url + "/v1/admin/backup", b"", {"Content-Type": "application/json"}
    )
    assert status == 200, body
    folder = Path(body["path"])
    assert folder.parent == tmp_path / "backups"
    _, _, health = http_json("GET", server.url + "/v1/health")
    assert (
        body["chain_head"] == health["chain_head"] and body["journal_seq"] == health["journal_seq"]
    )
    assert verify(folder / "stemedb.db").ok
    _, _, text = http_json("GET", server.url + "/metrics")
    line = next(
        ln for ln in text.splitlines() if ln.startswith("stemedb_last_backup_timestamp_seconds ")
    )
    assert float(line.split()[1]) == pytest.approx(body["timestamp_unix"])


def test_admin_backup_needs_the_admin_role(tmp_path: Path, run_server_process) -> None:  # type: ignore[no-untyped-def]
    from serverkit import http_json

    root = "r" * 40
    server = run_server_process({"STEMEDB_AUTH_ENABLED": "true", "STEMEDB_ROOT_API_KEY": root})
    url = server.url + "/v1/admin/backup"
    json_type = {"Content-Type": "application/json"}
    status, _, _ = http_json("POST", url, b"", json_type)
    assert status == 401
    status, _, body = http_json("POST", url, b"", {**json_type, "X-API-Key": root})
    assert status == 200, body
    assert backup.list_backups(tmp_path / "backups") == [Path(body["path"])]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand files to another owner")
def test_root_made_files_belong_to_the_service_directories_owner(tmp_path: Path) -> None:
    """Run as root, backup/restore/archive must not leave root-owned files (runbook §5)."""
    from stemedb.ops import archive, restore

    db = make_db(tmp_path / "db", (3,))
    for folder in ("backups", "wal", "restored"):
        (tmp_path / folder).mkdir()
        os.chown(tmp_path / folder, 65534, 65534)
    made = backup.backup(db, tmp_path / "backups")
    archive.seal(db, tmp_path / "wal")
    archive.ship(tmp_path / "wal", "true")
    restore.restore(tmp_path / "restored" / "stemedb.db", backup_dir=made.path)
    for folder in ("backups", "wal", "restored"):
        for path in (tmp_path / folder).rglob("*"):
            assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534), path
