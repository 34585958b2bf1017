"""Issue #6 §2: `stemedb archive` seals frames into segments incrementally and
idempotently, ships them with %p/%f substituted (retrying, with .done markers),
and refuses to mix an archive with a database on another timeline."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from ops_support import append_db, cli_env, frames, make_db, run_cli

from stemedb.ops import archive, restore
from stemedb.store import journal


def test_archive_is_incremental_and_idempotent(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (12,))
    env = cli_env(tmp_path)
    wal = tmp_path / "wal"

    first = run_cli("archive", env=env)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    head = frames(db)[-1][0]
    assert out["sealed"] == [archive.segment_name(0, head)]
    assert out["frames_sealed"] == head + 1

    again = run_cli("archive", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["sealed"] == []
    assert json.loads(again.stdout)["last_archived_seq"] == head
    assert sorted(p.name for p in wal.glob("journal-*")) == [archive.segment_name(0, head)]

    append_db(db, 5, "more")
    third = json.loads(run_cli("archive", env=env).stdout)
    new_head = frames(db)[-1][0]
    assert third["sealed"] == [archive.segment_name(head + 1, new_head)]
    names = sorted(p.name for p in wal.glob("journal-*"))
    assert names == [archive.segment_name(0, head), archive.segment_name(head + 1, new_head)]

    # Every line is a frame exactly as stored: hash of the body and chain re-check.
    archived = [f for s in archive.list_segments(wal) for f in archive.read_segment(s)]
    assert [(f.seq, f.hash.hex(), f.chain.hex()) for f in archived] == frames(db)
    assert journal.verify_frames(iter(archived), journal.ZERO_CHAIN, 0) == new_head + 1
    assert archive.archive_lag(wal, new_head) == 0
    assert archive.archive_lag(wal, new_head + 7) == 7


def test_segment_names_sort_in_journal_order() -> None:
    names = [archive.segment_name(a, b) for a, b in ((0, 9), (10, 99), (100, 1000))]
    assert sorted(names) == names


def test_archive_command_substitution_retry_and_markers(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (6,))
    wal = tmp_path / "wal dir"  # a space: %p must arrive shell-quoted
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    counter = tmp_path / "attempts"
    log = tmp_path / "calls.log"
    script = tmp_path / "ship.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"n=$(cat {shlex.quote(str(counter))} 2>/dev/null || echo 0); n=$((n+1))\n"
        f"echo $n > {shlex.quote(str(counter))}\n"
        f'echo "$1|$2" >> {shlex.quote(str(log))}\n'
        'if [ "$n" -le 2 ]; then echo "transient failure $n" >&2; exit 1; fi\n'
        f'cp "$1" {shlex.quote(str(shipped))}/"$2"\n'
    )
    script.chmod(0o755)
    env = cli_env(
        tmp_path,
        {"STEMEDB_WAL_DIR": str(wal), "STEMEDB_ARCHIVE_COMMAND": f"{script} %p %f"},
    )

    result = run_cli("archive", env=env)
    assert result.returncode == 0, result.stderr
    head = frames(db)[-1][0]
    name = archive.segment_name(0, head)
    assert json.loads(result.stdout)["shipped"] == [name]
    assert counter.read_text().strip() == "3"  # failed twice, then succeeded
    calls = log.read_text().splitlines()
    assert calls == [f"{(wal / name).resolve()}|{name}"] * 3
    assert (shipped / name).read_bytes() == (wal / name).read_bytes()
    assert (wal / f"{name}.done").exists()

    # A later run ships only the new segment; the shipped one is not retried.
    append_db(db, 3, "later")
    result = run_cli("archive", env=env)
    assert result.returncode == 0, result.stderr
    later = json.loads(result.stdout)
    assert later["shipped"] == later["sealed"] and len(later["sealed"]) == 1
    assert counter.read_text().strip() == "4"


def test_archive_command_that_never_succeeds_fails_and_is_retried_later(tmp_path: Path) -> None:
    make_db(tmp_path / "db", (3,))
    wal = tmp_path / "wal"
    archive.seal(tmp_path / "db" / "stemedb.db", wal)
    with pytest.raises(archive.ArchiveError, match="failed 3 times") as info:
        archive.ship(wal, "echo nope >&2; exit 7", backoff_s=0.01)
    assert "exit 7" in str(info.value) and "nope" in str(info.value)
    segment = archive.list_segments(wal)[0]
    assert not segment.done_marker.exists()
    assert archive.ship(wal, "test -s %p && test %f = " + segment.path.name) == [segment]
    assert segment.done_marker.exists()
    assert archive.ship(wal, "exit 1") == []  # nothing left to ship: the command is not run


def test_expand_command_quotes_and_escapes(tmp_path: Path) -> None:
    path = tmp_path / "it's here" / "journal-1-2.ndjson"
    cmd = archive.expand_command("aws s3 cp %p s3://b/%f --x 100%%", path)
    assert shlex.split(cmd) == [
        "aws",
        "s3",
        "cp",
        str(path.resolve()),
        "s3://b/journal-1-2.ndjson",
        "--x",
        "100%",
    ]


def test_archive_refuses_a_database_on_another_timeline(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (5,))
    wal = tmp_path / "wal"
    archive.seal(db, wal)
    other = make_db(tmp_path / "other", (5,))  # same shape, different history
    with pytest.raises(archive.ArchiveError, match="does not continue") as info:
        archive.seal(other, wal)
    assert info.value.seq is not None
    result = run_cli("archive", "--db", other, "--wal-dir", wal, env=cli_env(tmp_path))
    assert result.returncode == 1
    assert "chain differs at seq" in result.stderr


def test_one_archiver_at_a_time_and_overlapping_segments_still_restore(tmp_path: Path) -> None:
    db = make_db(tmp_path / "db", (6,))
    wal = tmp_path / "wal"
    with archive.locked(wal):
        with pytest.raises(archive.ArchiveError, match="another `stemedb archive`"):
            archive.archive(db, wal)
        busy = run_cli("archive", env=cli_env(tmp_path))
        assert busy.returncode == 1 and "another `stemedb archive`" in busy.stderr
    assert archive.list_segments(wal) == []
    archive.archive(db, wal)
    append_db(db, 4, "more")
    archive.archive(db, wal)
    # An extra segment overlapping both (as an interrupted manual copy might leave).
    every = [f for s in archive.list_segments(wal) for f in archive.read_segment(s)]
    extra = wal / archive.segment_name(3, 12)
    extra.write_text("".join(archive.frame_to_line(f) + "\n" for f in every[3:13]))
    target = tmp_path / "r.db"
    restore.restore(target, wal_dir=wal)
    assert frames(target) == frames(db)


def test_archive_after_a_point_in_time_restore_needs_the_old_segments_moved(
    tmp_path: Path,
) -> None:
    db = make_db(tmp_path / "db", (8,))
    wal = tmp_path / "wal"
    archive.seal(db, wal)
    earlier = tmp_path / "pit.db"
    restore.restore(earlier, wal_dir=wal, until_seq=5)
    with pytest.raises(archive.ArchiveError, match=r"reaches seq .* head is seq 5") as info:
        archive.seal(earlier, wal)
    assert info.value.seq == 5
    fresh = tmp_path / "wal-new"
    assert archive.seal(earlier, fresh).sealed[0].path.name == archive.segment_name(0, 5)
