"""SQL of value-text search (stemedb.service.value_search) over the `value_search`
FTS5 trigram index (migrations/0014_value_search.sql).

The index holds trigrams of every Text and Reference value; a phrase query of
the search text finds the claims whose value contains it (case-insensitive),
newest first, in any subject. The optional concept prefix narrows in SQL, on
whole path segments like every other prefix filter.
"""

from __future__ import annotations

import apsw

# (subject, predicate, value_text, seq), newest claim first.
_MATCHES = (
    "SELECT a.subject, a.predicate, a.value_text, a.seq FROM value_search v "
    "JOIN assertions a ON a.seq = v.rowid WHERE value_search MATCH ?{prefix} "
    "ORDER BY v.rowid DESC LIMIT ?"
)
_PREFIX = " AND (a.subject = ? OR (a.subject >= ? AND a.subject < ?))"

Match = tuple[str, str, str, int]


def phrase(text: str) -> str:
    """The FTS5 query for `text` as one literal substring (quotes doubled: no syntax)."""
    return '"' + text.replace('"', '""') + '"'


def matches(conn: apsw.Connection, text: str, prefix: str | None, scan: int) -> list[Match]:
    """Up to `scan` claims whose value text contains `text`, newest first."""
    if prefix:
        sql = _MATCHES.format(prefix=_PREFIX)
        params: tuple[object, ...] = (phrase(text), prefix, prefix + "/", prefix + "0", scan)
    else:
        sql = _MATCHES.format(prefix="")
        params = (phrase(text), scan)
    return [(str(s), str(p), str(v), int(q)) for s, p, v, q in conn.execute(sql, params)]
