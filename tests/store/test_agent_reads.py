"""The agent profile's count queries use an index by agent (migration 0010), never a scan."""

from __future__ import annotations

from pathlib import Path

import pytest

from stemedb.config import Settings
from stemedb.store import Store
from stemedb.store.agent_reads import COUNT_CLAIMS, COUNT_COSIGNED, COUNT_VOTES
from stemedb.store.schema import fetchall


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        (COUNT_CLAIMS, "assertions_by_agent"),
        (COUNT_CLAIMS + " AND written_ms <= ?", "assertions_by_agent"),
        (COUNT_COSIGNED, "cosigners_by_agent"),
        (COUNT_COSIGNED + " AND a.written_ms <= ?", "cosigners_by_agent"),
        (COUNT_VOTES, "vote_history_by_agent"),
        (COUNT_VOTES + " AND written_ms <= ?", "vote_history_by_agent"),
    ],
)
def test_profile_counts_read_by_the_agent_index(tmp_path: Path, sql: str, index: str) -> None:
    for folder in ("db", "wal"):
        (tmp_path / folder).mkdir()
    store = Store(Settings(db_dir=tmp_path / "db", wal_dir=tmp_path / "wal")).open()
    try:
        with store.reader() as conn:
            params = [b"\x01" * 32] + ([0] if "<=" in sql else [])
            plan = " | ".join(
                str(row[-1]) for row in fetchall(conn, "EXPLAIN QUERY PLAN " + sql, params)
            )
    finally:
        store.close()
    assert index in plan and "SCAN" not in plan, plan  # SEARCH ... USING INDEX, no scan
