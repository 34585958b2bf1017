"""SQL for the triage index: the assertions and supersessions written after a watermark.

The triage view (stemedb.service.triage) folds these rows into per-pair tallies
once, then only reads what is new, so a triage request never scans the whole
table. Both reads walk a table's INTEGER PRIMARY KEY (the journal seq).
"""

from __future__ import annotations

import apsw

# (seq, subject, predicate, value_key, confidence, tier, timestamp)
AssertionRow = tuple[int, str, str, str, float, int, int]

ASSERTIONS_AFTER = (
    "SELECT seq, subject, predicate, value_key, confidence, tier, timestamp "
    "FROM assertions WHERE seq > ? ORDER BY seq LIMIT ?"
)

# The first supersession of each target only (a second one changes nothing), with
# the target's row so its weight can be taken off its pair.
SUPERSESSIONS_AFTER = (
    "SELECT s.seq, a.subject, a.predicate, a.value_key, a.confidence, a.tier, a.timestamp "
    "FROM supersessions s JOIN assertions a ON a.hash = s.target_hash "
    "WHERE s.seq > ? AND NOT EXISTS (SELECT 1 FROM supersessions e "
    "WHERE e.target_hash = s.target_hash AND e.seq < s.seq) ORDER BY s.seq LIMIT ?"
)


def assertions_after(conn: apsw.Connection, after: int, limit: int) -> list[AssertionRow]:
    return [tuple(row) for row in conn.execute(ASSERTIONS_AFTER, (after, limit))]  # type: ignore[misc]


def supersessions_after(conn: apsw.Connection, after: int, limit: int) -> list[AssertionRow]:
    return [tuple(row) for row in conn.execute(SUPERSESSIONS_AFTER, (after, limit))]  # type: ignore[misc]


def max_seqs(conn: apsw.Connection) -> tuple[int, int]:
    """The newest seq of each table (0 when empty): how far the index must reach."""
    a = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM assertions").fetchone()
    s = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM supersessions").fetchone()
    return int(a[0] if a else 0), int(s[0] if s else 0)
