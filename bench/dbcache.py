"""Loaded databases, built once with `stemedb import --db` and cached in bench/.cache.

`database(n)` holds the 1,000-record "wide" pair (`wide/s0`, `p0`: one pair
with 1,000 candidates) and the first `n` records of the `bench` dataset (10
candidates per pair, n / 10 pairs). A larger database is built by copying the
largest smaller one and importing only the missing records, so 10k, 100k and
1M together cost one 1M import. Benchmarks never run on the cached file: they
get a copy (`copy_to`), since queries write audit rows and writes add frames.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import apsw

from bench import datasets
from bench.server import work_dir

WIDE = ("wide/s0", "p0")
WIDE_COUNT = 1000
PER_PAIR = 10


def _cached_sizes() -> list[int]:
    return sorted(
        int(p.name.split("-", 1)[1])
        for p in datasets.CACHE.glob("db-*")
        if (p / "stemedb.db").exists() and p.name.split("-", 1)[1].isdigit()
    )


def import_file(path: Path, db_dir: Path) -> dict[str, Any]:
    """`python -m stemedb.cli.main import PATH --db DB_DIR`; wall seconds and records/s."""
    lines = sum(1 for _ in path.open())
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    env["STEMEDB_SYNC"] = "full"
    progress = db_dir.parent / f"{db_dir.name}.progress"
    cmd = [
        sys.executable,
        "-m",
        "stemedb.cli.main",
        "import",
        str(path),
        "--db",
        str(db_dir),
        "--progress-file",
        str(progress),
    ]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    progress.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"stemedb import failed: {done.stderr.decode()[-2000:]}")
    return {"records": lines, "seconds": round(elapsed, 1), "rps": round(lines / elapsed)}


def database(n: int, log: list[dict[str, Any]] | None = None) -> Path:
    """The cached database directory holding the wide pair + the first n records."""
    target = datasets.CACHE / f"db-{n}"
    if (target / "stemedb.db").exists():
        return target
    source = datasets.signed_lines(n, PER_PAIR)
    smaller = [s for s in _cached_sizes() if s < n]
    with tempfile.TemporaryDirectory(dir=datasets.CACHE) as tmp:
        build = Path(tmp) / "db"
        build.mkdir()
        start = 0
        if smaller:
            start = smaller[-1]
            shutil.copyfile(datasets.CACHE / f"db-{start}" / "stemedb.db", build / "stemedb.db")
        else:
            wide = datasets.signed_lines(WIDE_COUNT, WIDE_COUNT, prefix="wide")
            import_file(wide, build)
        part = Path(tmp) / "part.ndjson"
        with source.open() as src, part.open("w") as out:
            for i, line in enumerate(src):
                if i >= start:
                    out.write(line)
        print(f"  building db-{n}: importing records {start}..{n} with stemedb import --db")
        stats = import_file(part, build)
        stats["from"] = start
        stats["to"] = n
        print(f"  built db-{n}: {stats}", flush=True)
        if log is not None:
            log.append(stats)
        part.unlink()
        build.rename(target)
    return target


def current(n: int) -> Path:
    """database(n)'s file at this tree's schema, upgraded once and kept next to it
    (`db-<n>/stemedb-v<version>.db`), so a server starts at once instead of applying
    the migrations (and their one-time rebuilds: the truth table's backfill,
    migration 0016, takes minutes at 1M) on every copy."""
    from stemedb.config import Settings
    from stemedb.store import Store, schema

    source = database(n) / "stemedb.db"
    latest = schema.latest_version()
    target = source.parent / f"stemedb-v{latest}.db"
    if target.exists():
        return target
    conn = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        if schema.user_version(conn) >= latest:
            return source
    finally:
        conn.close()
    with tempfile.TemporaryDirectory(dir=source.parent) as tmp:
        shutil.copyfile(source, Path(tmp) / "stemedb.db")
        started = time.perf_counter()
        store = Store(Settings(db_dir=Path(tmp)))
        try:
            store.open_journal()
            notes = store.open_projections()
        finally:
            store.close()  # the last connection: the WAL is folded back and removed
        print(
            f"  upgraded db-{n} to schema {latest} in {time.perf_counter() - started:.1f} s:"
            f" {notes}",
            flush=True,
        )
        os.replace(Path(tmp) / "stemedb.db", target)
    return target


def copy_to(n: int, dest: Path, *, upgraded: bool = True) -> Path:
    """A private copy of database(n) as dest/db/stemedb.db (a server's STEMEDB_DB_DIR):
    at this tree's schema (`current`), or with `upgraded=False` as it was built, for
    benches that run other trees' servers on it (an older build refuses a newer schema)."""
    source = current(n) if upgraded else database(n) / "stemedb.db"
    (dest / "db").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest / "db" / "stemedb.db")
    return dest


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="stemedb-bench-", dir=work_dir()))


def sample_hashes(n: int, k: int, seed: int = 11) -> list[str]:
    """k random assertion ids (hex) of database(n), read straight from its journal."""
    conn = apsw.Connection(str(database(n) / "stemedb.db"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        (top,) = next(iter(conn.execute("SELECT max(seq) FROM journal")))
        rng = random.Random(seed)
        out: list[str] = []
        while len(out) < k:
            seq = rng.randint(1, int(top))
            for (h,) in conn.execute(
                "SELECT hash FROM journal WHERE seq = ? AND kind = 'assertion'", (seq,)
            ):
                out.append(bytes(h).hex())
        return out
    finally:
        conn.close()


def pairs(n: int) -> list[tuple[str, str]]:
    """Every (subject, predicate) of the first n bench records (see datasets._record)."""
    return [(f"bench/s{p // 4}", f"p{p % 4}") for p in range(n // PER_PAIR)]


def lens_paths(n: int, lens: str, k: int = 20_000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    all_pairs = pairs(n)
    chosen = [all_pairs[rng.randrange(len(all_pairs))] for _ in range(k)]
    if lens == "skeptic":
        return [f"/v1/skeptic?subject={s}&predicate={p}" for s, p in chosen]
    return [f"/v1/query?subject={s}&predicate={p}&lens={lens}" for s, p in chosen]


def db_bytes(n: int) -> int:
    return (database(n) / "stemedb.db").stat().st_size
