"""Helpers for the operations tests: databases with every record kind, the CLI as a
subprocess, signed batches over HTTP, and reading heads/frames straight from files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import apsw

from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
from stemedb.crypto import generate_signing_key
from stemedb.records import prepare_record
from stemedb.signing import make_assertion
from stemedb.store import PendingRecord, Store

CLI = (sys.executable, "-m", "stemedb.cli.main")


def pend(kind: str = "assertion", **fields: Any) -> PendingRecord:
    """An unsigned record ready for Store.write (signatures are not the point here)."""
    if kind == "assertion":
        fields = {"subject": "ops/x", "predicate": "p", "object": "v", "confidence": 0.5, **fields}
    prepared = prepare_record(
        kind,
        fields,
        now_s=int(time.time()),
        scheme_tiers=DEFAULT_SCHEME_TIERS,
        require_signatures=False,
    )
    return PendingRecord(
        prepared.kind, prepared.hash, prepared.body, prepared.record, int(time.time() * 1000)
    )


def write_mixed(store: Store, n: int, tag: str) -> None:
    """`n` assertions plus one vote, supersession, epoch and alias (every projection)."""
    parent = pend(subject=f"ops/{tag}", object=f"root-{tag}")
    outcomes = store.write(
        [parent] + [pend(subject=f"ops/{tag}/{i % 5}", object=f"{tag}-{i}") for i in range(n)]
    )
    assert {o.status for o in outcomes} == {"created"}
    outcomes = store.write(
        [
            pend("vote", assertion_hash=parent.hash.hex(), weight=1),
            pend("supersession", target_hash=parent.hash.hex(), reason=f"r-{tag}"),
            pend("epoch", name=f"e-{tag}"),
            pend("alias", alias=f"brand-{tag}", canonical=f"ops/{tag}"),
        ]
    )
    assert {o.status for o in outcomes} == {"created"}


def make_db(directory: Path, batches: Sequence[int] = (20,)) -> Path:
    """A database whose journal holds `len(batches)` rounds of write_mixed."""
    directory.mkdir(parents=True, exist_ok=True)
    store = Store(Settings(db_dir=directory)).open()
    try:
        for index, n in enumerate(batches):
            write_mixed(store, n, f"b{index}")
    finally:
        store.close()
    return directory / "stemedb.db"


def append_db(db_path: Path, n: int, tag: str) -> None:
    store = Store(Settings(db_dir=db_path.parent)).open()
    try:
        write_mixed(store, n, tag)
    finally:
        store.close()


def cli_env(root: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    env.update(
        PYTHONUNBUFFERED="1",
        STEMEDB_DB_DIR=str(root / "db"),
        STEMEDB_WAL_DIR=str(root / "wal"),
        STEMEDB_BACKUP_DIR=str(root / "backups"),
    )
    env.update(extra or {})
    return env


def run_cli(
    *args: str | Path, env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def signed_assertions(n: int, tag: str, seed: bytes | None = None) -> list[dict[str, Any]]:
    seed = seed or generate_signing_key()
    return [
        make_assertion(
            seed,
            f"drill/{tag}/{i % 7}",
            "dose_mg",
            {"type": "Number", "value": i},
            0.8,
            source=f"pubmed:{tag}-{i}",
        )
        for i in range(n)
    ]


def readonly(path: Path) -> apsw.Connection:
    return apsw.Connection(
        f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    )


def file_head(path: Path) -> tuple[int, str]:
    conn = readonly(path)
    try:
        seq, chain = conn.execute(
            "SELECT seq, chain FROM journal ORDER BY seq DESC LIMIT 1"
        ).fetchall()[0]
        return int(seq), bytes(chain).hex()  # type: ignore[arg-type]
    finally:
        conn.close()


def frames(path: Path) -> list[tuple[int, str, str]]:
    """(seq, hash hex, chain hex) of every frame, in order."""
    conn = readonly(path)
    try:
        rows = conn.execute("SELECT seq, hash, chain FROM journal ORDER BY seq").fetchall()
        return [(int(s), bytes(h).hex(), bytes(c).hex()) for s, h, c in rows]  # type: ignore[arg-type]
    finally:
        conn.close()


def count(path: Path, table: str = "assertions") -> int:
    conn = readonly(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])  # type: ignore[arg-type]
    finally:
        conn.close()
