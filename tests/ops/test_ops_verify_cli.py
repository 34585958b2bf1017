"""Issue #6 §5: `stemedb verify` names the first bad seq of a tampered copy,
`reindex`/`migrate` work on a stopped database and refuse one that is in use."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from ops_support import cli_env, frames, make_db, run_cli

from stemedb.config import Settings
from stemedb.store import Store


def _tamper(db: Path, seq: int) -> None:
    """What an attacker with file access would do: drop the triggers, edit a body."""
    names = subprocess.run(
        [
            "sqlite3",
            str(db),
            "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='journal'",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert names, "the journal should be protected by triggers"
    sql = "".join(f"DROP TRIGGER {n};" for n in names)
    sql += f"UPDATE journal SET body = replace(body, 'b0-', 'B0-') WHERE seq = {seq};"
    subprocess.run(["sqlite3", str(db), sql], check=True)


def test_verify_ok_json_and_table(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (10,))
    env = cli_env(tmp_path)
    result = run_cli("verify", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    seq, _, chain = frames(db)[-1]
    assert report["ok"] and (report["journal_seq"], report["chain_head"]) == (seq, chain)
    table = run_cli("verify", "--full", "--format", "table", "--db", db, env=env)
    assert table.returncode == 0, table.stderr
    assert "rebuild_matches" in table.stdout and "integrity_check" in table.stdout
    assert chain in table.stdout and "OK" in table.stdout


def test_verify_names_the_first_bad_seq_of_a_tampered_copy(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (10,))
    copy = tmp_path / "copy.db"
    shutil.copyfile(db, copy)
    _tamper(copy, 5)
    env = cli_env(tmp_path)
    result = run_cli("verify", "--db", copy, env=env)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["first_bad_seq"] == 5
    assert "FAILED at seq 5" in result.stderr
    table = run_cli("verify", "--db", copy, "--format", "table", env=env)
    assert table.returncode == 1 and "first bad seq 5" in table.stdout
    assert run_cli("verify", "--db", db, env=env).returncode == 0  # the original is intact


def test_verify_of_a_missing_file_fails(tmp_path: Path) -> None:
    result = run_cli("verify", "--db", tmp_path / "nope.db", env=cli_env(tmp_path))
    assert result.returncode == 1 and "does not exist" in result.stdout


def test_db_may_name_the_directory_as_import_and_stemedb_db_dir_do(tmp_path: Path) -> None:
    """`--db /var/lib/stemedb/db` used to reach SQLite as a directory: 'disk I/O error'
    and the corruption runbook, a false alarm. A directory means its stemedb.db."""
    make_db(tmp_path / "db", (10,))
    env = cli_env(tmp_path)
    by_file = run_cli("verify", "--db", tmp_path / "db" / "stemedb.db", env=env)
    by_dir = run_cli("verify", "--db", tmp_path / "db", env=env)
    assert by_dir.returncode == 0, by_dir.stderr
    assert json.loads(by_dir.stdout)["journal_seq"] == json.loads(by_file.stdout)["journal_seq"]
    assert json.loads(by_dir.stdout)["path"] == str(tmp_path / "db" / "stemedb.db")
    result = run_cli("reindex", "--db", tmp_path / "db", env=env)
    assert result.returncode == 0, result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = run_cli("verify", "--db", empty, env=env)
    assert missing.returncode == 1
    assert f"{empty / 'stemedb.db'} does not exist" in missing.stderr


def test_reindex_and_migrate_on_a_stopped_database(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (10,))
    env = cli_env(tmp_path)
    before = frames(db)
    result = run_cli("reindex", env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["frames"] == len(before) and out["frames_per_second"] > 0
    assert "frames/s" in result.stderr
    assert run_cli("verify", "--full", env=env).returncode == 0
    migrate = run_cli("migrate", env=env)
    assert migrate.returncode == 0, migrate.stderr
    assert json.loads(migrate.stdout)["applied"] == []
    assert "up to date" in migrate.stderr
    missing = run_cli("migrate", "--db", tmp_path / "none.db", env=env)
    assert missing.returncode == 1 and "no database" in missing.stderr


def test_reindex_and_migrate_refuse_a_database_in_use(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (3,))
    store = Store(Settings(db_dir=db.parent)).open()  # what a running server holds
    try:
        env = cli_env(tmp_path)
        for command in ("reindex", "migrate"):
            result = run_cli(command, env=env)
            assert result.returncode == 1, command
            assert "in use" in result.stderr and "server running" in result.stderr
        assert run_cli("verify", env=env).returncode == 0  # verify only reads: allowed
    finally:
        store.close()
    assert run_cli("reindex", env=cli_env(tmp_path)).returncode == 0
