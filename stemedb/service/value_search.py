"""Search claimed values by text across every subject (the console's concept browser).

Why a trigram index: "which subjects mention hepatotox?" has no subject to start
from, and a scan of `assertions` reads every row (about a second at 1M). The
FTS5 index of migration 0014 answers a substring of three or more characters
from its posting lists. A frequent text can match most of the store, so a search
reads at most SCAN matching claims, newest first, and folds them into distinct
(subject, predicate, value) hits with a claim count; `complete` says whether
every matching claim was seen (docs/console.md, "Concepts").
"""

from __future__ import annotations

import time
from typing import Any

from stemedb.errors import InvalidRequest
from stemedb.paths import normalise_path
from stemedb.store import Store
from stemedb.store import value_search as store_search

MIN_CHARS = 3  # a trigram index cannot narrow a shorter text
SCAN = 2_000  # matching claims read per search, newest first


class ValueSearch:
    def __init__(self, store: Store) -> None:
        self.store = store

    def search(self, text: str, prefix: str | None, limit: int) -> dict[str, Any]:
        """Distinct (subject, predicate, value) whose value text contains `text`."""
        started = time.perf_counter()
        needle = text.strip()
        if len(needle) < MIN_CHARS:
            raise InvalidRequest.field("q", f"must be at least {MIN_CHARS} characters")
        if "\x00" in needle:  # FTS5 reads its query as a C string
            raise InvalidRequest.field("q", "must not contain NUL characters")
        path = normalise_path(prefix, "prefix") if prefix else None
        with self.store.reader() as conn:
            rows = store_search.matches(conn, needle, path, SCAN)
        hits: dict[tuple[str, str, str], dict[str, Any]] = {}
        more = len(rows) == SCAN  # claims left unread, or distinct hits past `limit`
        for subject, predicate, value, seq in rows:
            hit = hits.get((subject, predicate, value))
            if hit is None:
                if len(hits) == limit:
                    more = True
                    continue  # still counting the claims of the hits already listed
                hit = hits[(subject, predicate, value)] = {
                    "subject": subject,
                    "predicate": predicate,
                    "value": value,
                    "claims": 0,
                    "newest_seq": seq,
                }
            hit["claims"] += 1
        return {
            "q": needle,
            "prefix": path,
            "hits": list(hits.values()),
            "subjects": len({h["subject"] for h in hits.values()}),
            "complete": not more,
            "server_ms": round((time.perf_counter() - started) * 1000, 3),
        }
