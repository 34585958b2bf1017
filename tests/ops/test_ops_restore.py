"""Issue #6 §3: restore checks the backup's digest, replays archived frames after its
head (each hash and chain link re-checked), stops where asked, never overwrites
without --force, and names the seq of whatever does not match."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ops_support import append_db, cli_env, count, file_head, frames, make_db, run_cli

from stemedb.ops import archive, backup, restore


@pytest.fixture
def history(tmp_path: Path) -> dict[str, object]:
    """A backup at the first head, then two archived rounds of writes after it."""
    db = make_db(tmp_path / "db", (10,))
    made = backup.backup(db, tmp_path / "backups")
    wal = tmp_path / "wal"
    archive.seal(db, wal)
    append_db(db, 8, "second")
    archive.seal(db, wal)
    append_db(db, 6, "third")
    archive.seal(db, wal)
    return {"db": db, "backup": made.path, "wal": wal, "frames": frames(db)}


def test_restore_latest_and_to_a_seq(tmp_path: Path, history: dict[str, object]) -> None:
    every = history["frames"]
    assert isinstance(every, list)
    env = cli_env(tmp_path)
    target = tmp_path / "restored" / "stemedb.db"
    result = run_cli(
        "restore", history["backup"], "--wal-dir", history["wal"], "--target", target, env=env
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert frames(target) == every
    assert (out["journal_seq"], out["chain_head"]) == (every[-1][0], every[-1][2])
    assert f"journal seq {every[-1][0]}, chain head {every[-1][2]}" in result.stderr
    assert count(target) == count(history["db"])  # type: ignore[arg-type]
    for table in ("votes", "supersessions", "epochs", "aliases"):
        assert count(target, table) == count(history["db"], table)  # type: ignore[arg-type]

    point = every[-5][0]
    other = tmp_path / "pit.db"
    result = run_cli(
        "restore",
        history["backup"],
        "--wal-dir",
        history["wal"],
        "--until-seq",
        point,
        "--target",
        other,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert frames(other) == every[: point + 1]
    assert file_head(other) == (point, every[point][2])


def test_restore_refuses_to_overwrite_without_force(
    tmp_path: Path, history: dict[str, object]
) -> None:
    env = cli_env(tmp_path)
    target = tmp_path / "t.db"
    target.write_bytes(b"precious")
    result = run_cli("restore", history["backup"], "--target", target, env=env)
    assert result.returncode == 1
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert target.read_bytes() == b"precious"
    result = run_cli("restore", history["backup"], "--target", target, "--force", env=env)
    assert result.returncode == 0, result.stderr
    every = history["frames"]  # the archive in STEMEDB_WAL_DIR is replayed by default
    assert isinstance(every, list) and file_head(target) == (every[-1][0], every[-1][2])


def test_restore_from_archive_alone(tmp_path: Path, history: dict[str, object]) -> None:
    target = tmp_path / "from-archive.db"
    result = restore.restore(target, wal_dir=history["wal"])  # type: ignore[arg-type]
    assert frames(target) == history["frames"]
    assert result.base_seq == -1 and result.verify["ok"]


def test_restore_until_time(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (5,))
    wal = tmp_path / "wal"
    before = frames(db)
    time.sleep(0.05)
    cut = time.time()
    time.sleep(0.05)
    append_db(db, 5, "later")
    archive.seal(db, wal)
    target = tmp_path / "t.db"
    iso = datetime.fromtimestamp(cut, UTC).isoformat()
    for spec in (f"{cut:.3f}", iso):
        target.unlink(missing_ok=True)
        restore.restore(target, wal_dir=wal, until_ms=restore.parse_until_time(spec))
        assert frames(target) == before  # every frame before the cut and nothing after it
    with pytest.raises(restore.RestoreError, match="began after --until-time"):
        restore.restore(tmp_path / "early.db", wal_dir=wal, until_ms=1000)


def test_parse_until_time() -> None:
    assert restore.parse_until_time("1767225600") == 1767225600000
    assert restore.parse_until_time("2026-01-01T00:00:00Z") == 1767225600000
    assert restore.parse_until_time("2026-01-01T01:00:00+01:00") == 1767225600000
    assert restore.parse_until_time("2026-01-01 00:00:00") == 1767225600000
    with pytest.raises(ValueError, match="until-time"):
        restore.parse_until_time("yesterday")


def _rewrite_line(segment: Path, seq: int, change: dict[str, object]) -> None:
    lines = segment.read_text().splitlines()
    for i, line in enumerate(lines):
        item = json.loads(line)
        if item["seq"] == seq:
            item.update(change)
            lines[i] = json.dumps(item)
    segment.write_text("\n".join(lines) + "\n")


def test_tampered_segment_is_named_and_nothing_is_written(
    tmp_path: Path, history: dict[str, object]
) -> None:
    every = history["frames"]
    assert isinstance(every, list)
    seq = every[-3][0]
    segment = archive.list_segments(history["wal"])[-1].path  # type: ignore[arg-type]
    body = next(
        f.body
        for f in archive.read_segment(archive.list_segments(history["wal"])[-1])  # type: ignore[arg-type]
        if f.seq == seq
    )
    _rewrite_line(segment, seq, {"body": body.replace("third", "THIRD")})
    target = tmp_path / "t.db"
    result = run_cli(
        "restore",
        history["backup"],
        "--wal-dir",
        history["wal"],
        "--target",
        target,
        env=cli_env(tmp_path),
    )
    assert result.returncode == 1
    assert f"frame {seq}: hash does not match" in result.stderr and f"(seq {seq})" in result.stderr
    assert not target.exists()
    assert list(tmp_path.glob(".t.db*")) == []  # the scratch file is cleaned up

    # Up to the frame before the damage is still restorable.
    restore.restore(
        target,
        backup_dir=history["backup"],
        wal_dir=history["wal"],  # type: ignore[arg-type]
        until_seq=seq - 1,
    )
    assert file_head(target)[0] == seq - 1


def test_broken_chain_and_gaps_are_named(tmp_path: Path, history: dict[str, object]) -> None:
    wal, saved = history["wal"], history["backup"]
    assert isinstance(wal, Path) and isinstance(saved, Path)
    segments = archive.list_segments(wal)
    with pytest.raises(restore.RestoreError, match="ends at seq"):
        restore.restore(tmp_path / "c.db", backup_dir=saved, wal_dir=wal, until_seq=10_000)
    with pytest.raises(restore.RestoreError, match="past --until-seq"):
        restore.restore(tmp_path / "d.db", backup_dir=saved, wal_dir=wal, until_seq=1)

    middle = segments[1]
    _rewrite_line(middle.path, middle.first + 1, {"chain": "00" * 32})
    with pytest.raises(restore.RestoreError, match="chain link is broken") as info:
        restore.restore(tmp_path / "a.db", backup_dir=saved, wal_dir=wal)
    assert info.value.seq == middle.first + 1

    middle.path.unlink()
    with pytest.raises(restore.RestoreError, match="archive gap") as info:
        restore.restore(tmp_path / "b.db", backup_dir=saved, wal_dir=wal)
    assert info.value.seq == middle.first
    segments[0].path.unlink()
    with pytest.raises(restore.RestoreError, match="seq 0"):
        restore.restore(tmp_path / "e.db", wal_dir=wal)
    assert not any(tmp_path.glob("?.db"))


def test_damaged_backup_file_is_refused(tmp_path: Path, history: dict[str, object]) -> None:
    backup_dir = history["backup"]
    assert isinstance(backup_dir, Path)
    with open(backup_dir / "stemedb.db", "r+b") as handle:
        handle.seek(5000)
        original = handle.read(1)[0]
        handle.seek(5000)
        handle.write(bytes([original ^ 0xFF]))  # always a change, whatever the byte was
    result = run_cli("restore", backup_dir, "--target", tmp_path / "t.db", env=cli_env(tmp_path))
    assert result.returncode == 1
    assert "does not match its metadata" in result.stderr
    assert not (tmp_path / "t.db").exists()


def test_restore_of_another_history_is_refused(tmp_path: Path, history: dict[str, object]) -> None:
    stranger = make_db(tmp_path / "stranger", (10,))
    other_backup = backup.backup(stranger, tmp_path / "other-backups").path
    with pytest.raises(restore.RestoreError) as info:
        restore.restore(tmp_path / "x.db", backup_dir=other_backup, wal_dir=history["wal"])  # type: ignore[arg-type]
    assert info.value.seq is not None
    assert not (tmp_path / "x.db").exists()
