"""The same claims for every system: signed NDJSON for StemeDB, plain rows for the peers.

A plain row is what a user storing these claims without StemeDB would keep:
the claim's fields, the agent id and its signature as text, no verification,
no hash chain. Both peers get the same table and the one index the
"latest value of this subject and predicate" read needs. The loaded data is
`dbcache.database(n)`'s: the 1,000-candidate wide pair plus the first n bench
records.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import datasets, dbcache

COLUMNS = (
    "subject",
    "predicate",
    "object",
    "confidence",
    "source_class",
    "source",
    "timestamp",
    "agent_id",
    "signature",
)
SQLITE_SCHEMA = """
CREATE TABLE claims (
  id INTEGER PRIMARY KEY, subject TEXT NOT NULL, predicate TEXT NOT NULL,
  object TEXT NOT NULL, confidence REAL, source_class TEXT, source TEXT,
  timestamp INTEGER, agent_id TEXT, signature TEXT
);
"""
SQLITE_INDEX = "CREATE INDEX claims_sp_ts ON claims (subject, predicate, timestamp);"
PG_SCHEMA = """
CREATE TABLE claims (
  id BIGSERIAL PRIMARY KEY, subject TEXT NOT NULL, predicate TEXT NOT NULL,
  object TEXT NOT NULL, confidence DOUBLE PRECISION, source_class TEXT, source TEXT,
  timestamp BIGINT, agent_id TEXT, signature TEXT
);
"""
PG_INDEX = "CREATE INDEX claims_sp_ts ON claims (subject, predicate, timestamp);"
LATEST_SQL = (
    "select object, timestamp from claims where subject = :s and predicate = :p"
    " order by timestamp desc limit 1"
)


def row(line: str) -> dict[str, Any]:
    """A signed record (one NDJSON line) as a plain row."""
    rec = json.loads(line)
    sig = rec["signatures"][0]
    return {
        "subject": rec["subject"],
        "predicate": rec["predicate"],
        "object": json.dumps(rec["object"], separators=(",", ":")),
        "confidence": rec["confidence"],
        "source_class": rec.get("source_class"),
        "source": rec.get("source"),
        "timestamp": rec["timestamp"],
        "agent_id": sig["agent_id"],
        "signature": sig["signature"],
    }


def loaded_lines(n: int) -> Iterator[str]:
    """The records of dbcache.database(n), in import order."""
    wide = datasets.signed_lines(dbcache.WIDE_COUNT, dbcache.WIDE_COUNT, prefix="wide")
    for path, limit in ((wide, dbcache.WIDE_COUNT), (datasets.signed_lines(n), n)):
        with path.open() as f:
            for i, line in enumerate(f):
                if i >= limit:
                    break
                yield line


def sqlite_file(n: int) -> Path:
    """Datasette's database: the loaded data as plain rows, WAL mode, cached."""
    target = datasets.CACHE / f"peers-sqlite-{n}.db"
    if target.exists():
        return target
    tmp = target.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SQLITE_SCHEMA)
    marks = ", ".join("?" for _ in COLUMNS)
    with conn:
        conn.executemany(
            f"INSERT INTO claims ({', '.join(COLUMNS)}) VALUES ({marks})",
            (tuple(row(line)[c] for c in COLUMNS) for line in loaded_lines(n)),
        )
    conn.execute(SQLITE_INDEX)
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    tmp.rename(target)
    return target


def csv_file(n: int) -> Path:
    """The loaded data as CSV for Postgres' COPY, cached."""
    target = datasets.CACHE / f"peers-rows-{n}.csv"
    if target.exists():
        return target
    tmp = target.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        out = csv.writer(f)
        for line in loaded_lines(n):
            r = row(line)
            out.writerow([r[c] for c in COLUMNS])
    tmp.rename(target)
    return target


def single_bodies(lines: list[str]) -> list[str]:
    """`{"row": {...}}` per claim: Datasette's /-/insert body, and the Postgres app's."""
    return [json.dumps({"row": row(line)}, separators=(",", ":")) for line in lines]


def bulk_bodies(lines: list[str], chunk: int) -> list[str]:
    """`{"rows": [... chunk rows]}` per request."""
    return [
        json.dumps({"rows": [row(x) for x in lines[s : s + chunk]]}, separators=(",", ":"))
        for s in range(0, len(lines) - chunk + 1, chunk)
    ]


def ndjson_bodies(lines: list[str], chunk: int) -> list[str]:
    """StemeDB batch bodies: `chunk` signed records as NDJSON per request."""
    return [
        "".join(x.rstrip("\n") + "\n" for x in lines[s : s + chunk])
        for s in range(0, len(lines) - chunk + 1, chunk)
    ]
