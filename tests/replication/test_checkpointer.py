"""With Litestream on, our checkpointer and SQLite's autocheckpoint leave checkpoints to it."""

from __future__ import annotations

from pathlib import Path

from stemedb.config import Settings
from stemedb.store import checkpointer, schema


def _db(tmp_path: Path) -> Path:
    path = tmp_path / "x.db"
    conn = schema.connect(path)
    conn.execute("CREATE TABLE t(x)")
    conn.close()
    return path


def test_cooperate_turns_off_autocheckpoint_only_when_replicating(tmp_path: Path) -> None:
    path = _db(tmp_path)
    conn = schema.connect(path)
    checkpointer.cooperate(conn, Settings())
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchall()[0][0] == 1000
    checkpointer.cooperate(conn, Settings(replica_url=("file:///r",)))
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchall()[0][0] == 0


def test_replicating_checkpointer_only_guards_a_large_wal(tmp_path: Path, monkeypatch) -> None:
    path = _db(tmp_path)
    writer = schema.connect(path)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO t VALUES (randomblob(100000))")
    cp = checkpointer.Checkpointer(path, sync="full", replicating=True)
    conn = schema.connect(path)
    cp.checkpoint(conn)
    assert (cp.checkpoints, cp.skipped) == (0, 1)  # Litestream's turn
    monkeypatch.setattr(checkpointer, "GUARD_BYTES", 1024)  # as if Litestream were down
    cp.checkpoint(conn)
    assert cp.checkpoints == 1
    plain = checkpointer.Checkpointer(path, sync="full")
    plain.checkpoint(conn)
    assert (plain.checkpoints, plain.skipped) == (1, 0)


def test_replica_settings_are_checked() -> None:
    import pytest

    from stemedb.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="STEMEDB_REPLICA_URL"):
        load_settings({"STEMEDB_ROLE": "replica"})
    with pytest.raises(ConfigError, match="STEMEDB_ROOT_API_KEY"):
        load_settings(
            {
                "STEMEDB_ROLE": "replica",
                "STEMEDB_REPLICA_URL": "file:///r",
                "STEMEDB_ROOT_API_KEY": "k" * 40,
            }
        )
    with pytest.raises(ConfigError, match="not a Litestream replica URL"):
        load_settings({"STEMEDB_REPLICA_URL": "/just/a/path"})
    replica = load_settings({"STEMEDB_ROLE": "replica", "STEMEDB_REPLICA_URL": "s3://b/p"})
    assert replica.query_audit is False and replica.replica_url == ("s3://b/p",)
