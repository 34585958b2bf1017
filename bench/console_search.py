"""Server time of GET /v1/concepts/search (value text across subjects) at scale.

Fills the real `assertions` table (real migrations, so the value_search triggers
index every row as a write would) with N synthetic rows from bench/console_triage.py
(value texts like `v3-12345`: five values per pair, each unique to its pair), then
times the real ValueSearch in-process for four kinds of text:

* rare: one pair's value (`v3-12345`, a few claims);
* frequent: a text in a fifth of all claims (`v3-`; the search reads SCAN of them);
* medium: a text in about 1 in 1,000 claims (`-777`);
* miss: a text no value contains.

It also times the alternative without an index (a LIKE scan of `assertions`) for
the rare text, the write cost of the triggers (the same fill without them), and
the index's size on disk.

    .venv/bin/python -m bench.console_search 1000000
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.console_triage import RowStore, fill
from stemedb.service.value_search import ValueSearch
from stemedb.store import schema

TEXTS = {"rare": "v3-{pair}", "frequent": "v3-", "medium": "-777", "miss": "zzq"}


def timed_fill(path: Path, n: int, triggers: bool) -> tuple[RowStore, float]:
    store = RowStore(path)
    schema.apply_migrations(store.conn)
    if not triggers:
        store.conn.execute("DROP TRIGGER value_search_insert")
    started = time.perf_counter()
    for start in range(0, n, 100_000):
        fill(store.conn, start, min(100_000, n - start))
    return store, time.perf_counter() - started


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 100_000
    with tempfile.TemporaryDirectory(prefix="stemedb-search-") as tmp:
        plain, plain_s = timed_fill(Path(tmp) / "plain.db", n, triggers=False)
        plain.conn.close()
        store, fill_s = timed_fill(Path(tmp) / "search.db", n, triggers=True)
        search = ValueSearch(store)  # type: ignore[arg-type]
        pairs = n // 10
        out = []
        for kind, pattern in TEXTS.items():
            times = []
            for i in range(40):
                text = pattern.format(pair=(i * 7919) % pairs)
                started = time.perf_counter()
                body = search.search(text, None, 50)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            out.append(
                f"{kind}: median={statistics.median(times):.1f}ms "
                f"p99={times[int(len(times) * 0.99) - 1]:.1f}ms hits={len(body['hits'])} "
                f"complete={body['complete']}"
            )
        started = time.perf_counter()
        rows = store.conn.execute(
            "SELECT subject FROM assertions WHERE value_text LIKE ? LIMIT 2000", ("%v3-4242%",)
        ).fetchall()
        scan_ms = (time.perf_counter() - started) * 1000
        fts_bytes = store.conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'value_search%'"
        ).fetchone() or (0,)
        print(
            f"assertions={n:,} fill_with_index={fill_s:.1f}s fill_without={plain_s:.1f}s "
            f"index_size={int(fts_bytes[0]) / 2**20:.0f}MB like_scan_rare={scan_ms:.0f}ms "
            f"({len(rows)} rows)"
        )
        print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
