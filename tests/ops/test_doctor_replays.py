"""`stemedb doctor` reports journal replays (issue 14): records whose kind and signed
digest repeat an earlier record's, listed in `record_replays` (migration 0012).

The old file is made for real by tests/replaykit.py (a pre-v0.2 server's frames,
re-minted copies of every kind), then upgraded by the current store as a start does.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ops_support import cli_env, run_cli
from replaykit import as_found_by_the_upgrade, old_frame, records, replays_of, write_old

from stemedb.config import Settings
from stemedb.ops.doctor_replays import check_replays
from stemedb.store import Store, digests
from stemedb.store.schema import connect


def _old_file(directory: Path, *, with_replays: bool = True) -> Counter[str]:
    """A pre-v0.2 file in `directory` (upgraded as a start does); its replays per kind."""
    every_kind = records()
    originals = [old_frame(kind, record) for kind, record in every_kind]
    replays = [frame for kind, record in every_kind for frame in replays_of(kind, record)]
    write_old(directory, [originals, replays] if with_replays else [originals])
    as_found_by_the_upgrade(directory / "stemedb.db", digests_backfilled=False)
    store = Store(Settings(db_dir=directory))
    store.open_journal()
    try:
        store.open_projections()
    finally:
        store.close()
    return Counter(r.kind for r in replays) if with_replays else Counter()


def test_replays_are_a_warning_with_counts_per_kind_and_the_forensics_query(
    tmp_path: Path,
) -> None:
    per_kind = _old_file(tmp_path / "db")
    assert per_kind["assertion"] == 12 and len(per_kind) == len({k for k, _ in records()})
    [finding] = check_replays(Settings(db_dir=tmp_path / "db"))
    assert finding.check == "replays" and finding.status == "warn"
    total = sum(per_kind.values())
    assert finding.detail.startswith(f"{total} journal frames are replays of earlier records")
    for kind, n in per_kind.items():
        assert f"{n} {kind} (first at seq " in finding.detail
    assert 'docs/forensics.md, "Record identities and replays"' in finding.action
    # forensics.md has that section and its query
    text = (Path(__file__).resolve().parents[2] / "docs" / "forensics.md").read_text("utf-8")
    assert "## Record identities and replays" in text and "FROM record_replays r" in text

    # the CLI runs the check with the others: a warning, not a failure
    result = run_cli("doctor", "--format", "json", env=cli_env(tmp_path))
    assert result.returncode in (0, 1), result.stderr
    [listed] = [f for f in json.loads(result.stdout)["findings"] if f["check"] == "replays"]
    assert listed == {
        "check": "replays",
        "status": "warn",
        "detail": finding.detail,
        "action": finding.action,
    }


def test_no_replays_is_ok(tmp_path: Path) -> None:
    _old_file(tmp_path / "db", with_replays=False)
    [finding] = check_replays(Settings(db_dir=tmp_path / "db"))
    assert (finding.status, finding.detail) == (
        "ok",
        "no journal frame repeats an earlier record",
    )


def test_a_file_not_yet_upgraded_cannot_say_and_a_pending_backfill_may_list_more(
    tmp_path: Path,
) -> None:
    settings = Settings(db_dir=tmp_path / "db")
    assert check_replays(settings)[0].status == "skip"  # no database yet
    _old_file(tmp_path / "db")
    conn = connect(settings.db_path)
    with conn:  # a backfill the server has not finished (its marker in meta)
        conn.execute("INSERT INTO meta VALUES (?, 0)", (digests.BACKFILL_KEY,))
    conn.close()
    [finding] = check_replays(settings)
    assert finding.status == "warn" and "more may be listed" in finding.detail
    as_found_by_the_upgrade(settings.db_path, digests_backfilled=False)  # before migration 0012
    [finding] = check_replays(settings)
    assert finding.status == "skip" and "older than migration 0012" in finding.detail
