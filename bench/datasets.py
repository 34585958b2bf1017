"""Signed datasets, generated once and cached under bench/.cache/ (gitignored).

Signing dominates generation, so a cache keyed by shape makes re-runs cheap.
Records are spread over (subject, predicate) pairs so lens queries have a
chosen number of candidates per pair.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

from stemedb.crypto import generate_signing_key
from stemedb.signing import make_assertion

CACHE = Path(__file__).resolve().parent / ".cache"
T0 = 1_700_000_000
SOURCES = ("fda://label/", "pubmed://", "study://", "wiki://", "forum://", "blog://")
AGENTS = 64


def _agent_seeds() -> list[bytes]:
    path = CACHE / "agents.json"
    if path.exists():
        return [bytes.fromhex(s) for s in json.loads(path.read_text())]
    CACHE.mkdir(parents=True, exist_ok=True)
    seeds = [generate_signing_key() for _ in range(AGENTS)]
    path.write_text(json.dumps([s.hex() for s in seeds]))
    return seeds


def _record(args: tuple[int, int, list[bytes], str]) -> str:
    i, per_pair, seeds, prefix = args
    pair = i // per_pair
    seed = seeds[i % len(seeds)]
    record = make_assertion(
        seed,
        f"{prefix}/s{pair // 4}",
        f"p{pair % 4}",
        f"v{(i * 7919) % 5}",
        round(0.5 + (i % 50) / 100, 2),
        source=f"{SOURCES[i % len(SOURCES)]}{i}",
        timestamp=T0 + i,
        now_s=T0 + 10_000_000,
    )
    return json.dumps(record, separators=(",", ":"))


def signed_lines(count: int, per_pair: int = 10, prefix: str = "bench") -> Path:
    """An NDJSON file of `count` signed assertions, `per_pair` per (subject, predicate).

    Record i depends only on (i, per_pair, prefix) and the cached agent keys
    (Ed25519 signatures are deterministic), so a smaller file is the prefix of
    a larger one: a size is cut from a larger cached file, or a smaller cached
    file is extended, instead of signing everything again.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{prefix}-{count}-{per_pair}.ndjson"
    if path.exists():
        return path
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    sizes = sorted(_cached_sizes(prefix, per_pair))
    larger = [n for n in sizes if n > count]
    if larger:
        with (
            (CACHE / f"{prefix}-{larger[0]}-{per_pair}.ndjson").open() as src,
            tmp.open("w") as out,
        ):
            for _, line in zip(range(count), src, strict=False):
                out.write(line)
        tmp.rename(path)
        return path
    smaller = [n for n in sizes if n < count]
    start = smaller[-1] if smaller else 0
    if start:
        shutil.copyfile(CACHE / f"{prefix}-{start}-{per_pair}.ndjson", tmp)
    seeds = _agent_seeds()
    with multiprocessing.Pool() as pool, tmp.open("a") as out:
        jobs = ((i, per_pair, seeds, prefix) for i in range(start, count))
        for line in pool.imap(_record, jobs, chunksize=500):
            out.write(line + "\n")
    tmp.rename(path)
    return path


def _cached_sizes(prefix: str, per_pair: int) -> list[int]:
    sizes = []
    for found in CACHE.glob(f"{prefix}-*-{per_pair}.ndjson"):
        middle = found.name[len(prefix) + 1 : -len(f"-{per_pair}.ndjson")]
        if middle.isdigit():
            sizes.append(int(middle))
    return sizes


def load_lines(path: Path, limit: int | None = None) -> list[str]:
    with path.open() as f:
        lines = [line.rstrip("\n") for line in f]
    return lines[:limit] if limit else lines
