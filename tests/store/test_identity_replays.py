"""Replays stored before v0.2 (data-model.md §7; issue 14 item 1, the leftovers).

A pre-v0.2 server journaled every record id it had not seen, so its file can
hold two frames with one identity (kind + signed digest): a copy re-minted by
changing an unsigned signature-entry `timestamp`, or a co-signed claim with an
entry stripped. After the upgrade the first frame is the record and every
later one a *replay*: still in the journal (never edited), listed in
`record_replays`, projected nowhere, so no lens counts it; the upgrade path
(migration + start-up backfill) and `stemedb reindex` build the same tables.

The old file is made for real by tests/replaykit.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from identitykit import T
from replaykit import (
    SUBJECT,
    as_found_by_the_upgrade,
    old_frame,
    records,
    replays_of,
    upgrade,
    write_old,
)

from stemedb.store import PendingRecord, digests, journal, projections
from stemedb.store.schema import connect, fetchall
from stemedb.store.verify import reindex, verify


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = connect(path)
    try:
        present = {str(r[0]) for r in fetchall(conn, "SELECT name FROM sqlite_master")}
        return {
            table: sorted(fetchall(conn, f"SELECT * FROM {table}"), key=repr)
            for table in projections.PROJECTION_TABLES
            if table in present  # record_replays: not before migration 0012
        }
    finally:
        conn.close()


def _journal(path: Path) -> list[tuple[Any, ...]]:
    conn = connect(path)
    try:
        return fetchall(conn, "SELECT * FROM journal ORDER BY seq")
    finally:
        conn.close()


def _counted(path: Path) -> dict[str, Any]:
    """What lenses read: rows per projection (but the replay list itself), the vote
    totals and trust of each agent."""
    tables = _tables(path)
    counts: dict[str, Any] = {t: len(rows) for t, rows in tables.items() if t != "record_replays"}
    conn = connect(path)
    try:
        counts["vote_totals"] = fetchall(conn, "SELECT * FROM vote_totals")
        counts["trust"] = fetchall(
            conn, "SELECT agent_id, score, accurate, inaccurate FROM trust ORDER BY agent_id"
        )
        counts["shares"] = fetchall(
            conn,
            "SELECT value_text, count(*) FROM assertions WHERE subject = ? GROUP BY value_text",
            (SUBJECT,),
        )
    finally:
        conn.close()
    return counts


def _old_file(tmp_path: Path, digests_backfilled: bool) -> tuple[Path, list[Any], list[Any]]:
    """(the old file, its original frames, its replays); a clean file with the
    originals alone is written to tmp_path/clean."""
    every_kind = records()
    originals = [old_frame(kind, record) for kind, record in every_kind]
    replays = [frame for kind, record in every_kind for frame in replays_of(kind, record)]
    write_old(tmp_path / "clean", [originals])
    write_old(tmp_path / "old", [originals, replays])
    old = tmp_path / "old" / "stemedb.db"
    as_found_by_the_upgrade(old, digests_backfilled=digests_backfilled)
    return old, originals, replays


@pytest.mark.parametrize("digests_backfilled", [False, True], ids=["pre-v0.2", "early-v0.2"])
def test_replays_in_an_old_file_are_kept_in_the_journal_and_never_counted(
    tmp_path: Path, digests_backfilled: bool
) -> None:
    old, originals, replays = _old_file(tmp_path, digests_backfilled)
    clean = _counted(tmp_path / "clean" / "stemedb.db")
    assert _counted(old) != clean  # what the old server's lenses counted
    journal = _journal(old)

    notes = upgrade(old.parent)

    assert "replays" in notes or "backfilled" in notes
    assert _journal(old) == journal  # no frame deleted or edited
    assert _counted(old) == clean  # every kind: counted once, as if never replayed
    assert dict(_counted(old)["shares"]) == {"yes": 1, "no": 1}
    conn = connect(old)
    try:
        by_hash = {bytes(h): int(s) for s, h in fetchall(conn, "SELECT seq, hash FROM journal")}
        listed = fetchall(conn, "SELECT seq, kind, first_seq FROM record_replays ORDER BY seq")
        for replay in replays:
            found = digests.replay_of(conn, replay.hash)
            first = _first_hash(replay, originals)
            assert found is not None, replay.kind
            assert (found.seq, found.hash) == (by_hash[first], first)
        assert [(s, k) for s, k, _ in listed] == sorted((by_hash[r.hash], r.kind) for r in replays)
        assert {k for _, k, _ in listed} == {kind for kind, _ in records()}
        assert all(digests.replay_of(conn, o.hash) is None for o in originals)
    finally:
        conn.close()


def _first_hash(replay: PendingRecord, originals: list[PendingRecord]) -> bytes:
    want = digests.digest_of(replay.record)
    return next(o.hash for o in originals if digests.digest_of(o.record) == want)


@pytest.mark.parametrize("digests_backfilled", [False, True], ids=["pre-v0.2", "early-v0.2"])
def test_the_upgrade_and_reindex_build_the_same_projections(
    tmp_path: Path, digests_backfilled: bool
) -> None:
    old, _, replays = _old_file(tmp_path, digests_backfilled)
    upgrade(old.parent)
    upgraded = _tables(old)
    assert len(upgraded["record_replays"]) == len(replays)
    reindex(old)
    assert _tables(old) == upgraded
    upgrade(old.parent)  # a second start changes nothing
    assert _tables(old) == upgraded


def test_verify_counts_the_replays_and_passes(tmp_path: Path) -> None:
    old, _, replays = _old_file(tmp_path, False)
    upgrade(old.parent)
    for full in (False, True):
        report = verify(old, full=full)
        assert report.ok, json.dumps(report.to_dict(), indent=1)
        (finding,) = (c["detail"] for c in report.checks if c["check"] == "replays")
        assert "journal frames are replays of earlier records" in finding
        assert finding.startswith(f"{len(replays)} journal frames are replays")
        assert "12 assertion (first at seq" in finding  # 2 re-timestamped each, 2+2 stripped x2
        counted = {c["check"]: c["detail"] for c in report.checks}
        assert counted["count_assertions"].endswith("12 replays not counted")
    # docs/forensics.md: the identity check lists nothing, the replay list has them all
    text = (Path(__file__).resolve().parents[2] / "docs" / "forensics.md").read_text("utf-8")
    check, listing = re.findall(r"```sql\n(.*?)```", text.split("## Record identities")[1], re.S)[
        :2
    ]
    assert _shell(old, check) == ""
    assert len(_shell(old, listing).splitlines()) == len(replays)


def _shell(db: Path, sql: str) -> str:
    done = subprocess.run(["sqlite3", str(db), sql], capture_output=True, text=True, check=True)
    return done.stdout


def test_a_replay_reaching_the_projections_by_catch_up_is_not_counted(tmp_path: Path) -> None:
    """Frames applied at start (after a crash, a restore's replayed archive, an
    import) go through the same rule as a rebuild: a replay is listed, not counted."""
    directory = tmp_path / "live"
    write_old(directory, [[old_frame(kind, record) for kind, record in records()]])
    path = directory / "stemedb.db"
    upgrade(directory)
    counted = _counted(path)
    conn = connect(path)
    with conn:  # journalled but not yet projected, as a crash right after the commit leaves it
        head = journal.read_head(conn)
        assert head is not None
        for kind, record in records():
            frame = old_frame(kind, record, T + 99)
            head = journal.append(conn, head, kind, frame.hash, frame.body, int(time.time() * 1000))
    conn.close()
    assert f"re-applied {len(records())} frames" in upgrade(directory)
    assert _counted(path) == counted
    assert len(_tables(path)["record_replays"]) == len(records())
    report = verify(path, full=True)
    assert report.ok, json.dumps(report.to_dict(), indent=1)


def test_identities_noted_out_of_order_are_put_right_by_the_backfill(tmp_path: Path) -> None:
    """A restore replays archived frames onto an old backup before its backfill ran:
    the replays claim their identities first. The backfill, meeting the earlier
    frame, makes it the record and the later one the replay, and rebuilds."""
    old, _, replays = _old_file(tmp_path, False)
    conn = connect(old)
    with conn:
        conn.execute(
            "CREATE TABLE record_replays (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
            " first_seq INTEGER NOT NULL)"
        )
        by_hash = {bytes(h): int(s) for s, h in fetchall(conn, "SELECT seq, hash FROM journal")}
        seen: set[bytes] = set()
        for replay in reversed(replays):  # what the restore's apply noted: the last per record
            identity = digests.digest_of(replay.record) + digests.signer_of(
                replay.kind, replay.record
            )
            if identity not in seen:
                seen.add(identity)
                assert digests.note(conn, by_hash[replay.hash], replay.kind, replay.record)
    conn.close()
    assert _counted(old) != _counted(tmp_path / "clean" / "stemedb.db")

    upgrade(old.parent)

    assert _counted(old) == _counted(tmp_path / "clean" / "stemedb.db")
    upgraded = _tables(old)
    assert len(upgraded["record_replays"]) == len(replays)
    reindex(old)
    assert _tables(old) == upgraded


def test_verify_of_a_file_from_before_the_replay_list(tmp_path: Path) -> None:
    """A backup made by an earlier build (no `record_replays` yet) verifies without the
    list; --full says its projections still count replays, and why."""
    old, _, _ = _old_file(tmp_path, True)
    clean = tmp_path / "clean" / "stemedb.db"
    as_found_by_the_upgrade(clean, digests_backfilled=True)
    quick = verify(old)
    assert quick.ok, quick.to_dict()
    (finding,) = (c["detail"] for c in quick.checks if c["check"] == "replays")
    assert finding.startswith("not listed yet: the file predates migration 0012")
    full = verify(old, full=True)
    (failed,) = (c for c in full.checks if not c["ok"])
    assert failed["check"] == "rebuild_matches" and "assertions" in failed["detail"]
    assert "still counts the replays" in failed["detail"]
    report = verify(clean, full=True)
    assert report.ok, report.to_dict()
    (matches,) = (c["detail"] for c in report.checks if c["check"] == "rebuild_matches")
    assert matches.endswith("(not in this older file yet: record_replays)")


def test_restoring_a_backup_of_an_old_file_leaves_the_replays_uncounted(tmp_path: Path) -> None:
    """`stemedb restore` of a backup an earlier build made: the restored file holds
    what the upgrade and reindex build, and restore's own full verify passes."""
    from stemedb.ops.backup import backup
    from stemedb.ops.restore import restore

    old, _, replays = _old_file(tmp_path, False)
    made = backup(old, tmp_path / "backups")
    target = tmp_path / "restored" / "stemedb.db"
    restore(target, backup_dir=made.path)
    assert _counted(target) == _counted(tmp_path / "clean" / "stemedb.db")
    assert len(_tables(target)["record_replays"]) == len(replays)
