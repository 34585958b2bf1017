"""Durable ingest, measured side by side in one run.

* floor: the irreducible work only — SHA3 of each body, Ed25519 verification,
  and inserting the same journal + assertion rows (same schema, same indexes)
  through apsw in 1,000-row transactions;
* store-bulk: `Store.write` in 1,000-record calls (what `stemedb import --db` does);
* store-group-commit: 32 threads writing one record per call, group commit on;
* store-one-per-txn: the same with `GROUP_COMMIT_MAX_BATCH=1` (one fsync per record).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from stemedb.canonical import canonical_json
from stemedb.config import Settings
from stemedb.crypto import sha3_256, signing_message, verify_signature
from stemedb.records import SourceClass, prepare_record
from stemedb.store import PendingRecord, Store, schema
from stemedb.store.journal import ZERO_CHAIN, next_chain


def _pending(lines: list[str]) -> list[PendingRecord]:
    now_ms = int(time.time() * 1000)
    out = []
    for line in lines:
        prepared = prepare_record(
            "assertion",
            json.loads(line),
            now_s=now_ms // 1000,
            scheme_tiers=Settings().scheme_tiers,
            require_signatures=True,
        )
        out.append(
            PendingRecord("assertion", prepared.hash, prepared.body, prepared.record, now_ms)
        )
    return out


def floor(lines: list[str], sync: str = "full") -> float:
    """Records/s for verify + insert with no product code in the way."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = schema.connect(Path(tmp) / "floor.db", sync=sync)
        schema.apply_migrations(conn)
        started = time.perf_counter()
        chain, seq = ZERO_CHAIN, 0
        for start in range(0, len(lines), 1000):
            conn.execute("BEGIN IMMEDIATE")
            for line in lines[start : start + 1000]:
                record = json.loads(line)
                unsigned = {k: v for k, v in record.items() if k != "signatures"}
                body = line.encode()
                digest = sha3_256(canonical_json(unsigned).encode())
                sig = record["signatures"][0]
                message = signing_message("assertion", digest)
                if not verify_signature(sig["agent_id"], sig["signature"], message):
                    raise AssertionError("floor: a dataset signature failed to verify")
                frame_hash = sha3_256(body)
                seq += 1
                written = int(time.time() * 1000)
                chain = next_chain(chain, frame_hash, written)
                conn.execute(
                    "INSERT INTO journal VALUES (?, 'assertion', ?, ?, ?, ?)",
                    (seq, frame_hash, line, written, chain),
                )
                obj = record["object"]
                conn.execute(
                    "INSERT INTO assertions (seq, hash, subject, predicate, object_type,"
                    " value_text, value_key, confidence, tier, source, source_hash, lifecycle,"
                    " timestamp, agent_id, written_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        seq,
                        frame_hash,
                        record["subject"],
                        record["predicate"],
                        obj["type"],
                        obj["value"],
                        json.dumps(obj, separators=(",", ":")),
                        record["confidence"],
                        int(SourceClass[record["source_class"]]),
                        record.get("source"),
                        bytes.fromhex(record["source_hash"]),
                        record["lifecycle"],
                        record["timestamp"],
                        bytes.fromhex(sig["agent_id"]),
                        written,
                    ),
                )
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
    return len(lines) / elapsed


def _store(tmp: str, **overrides: Any) -> Store:
    return Store(Settings(db_dir=Path(tmp), **overrides)).open()


def store_bulk(lines: list[str], sync: str = "full") -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(tmp, sync=sync)
        started = time.perf_counter()
        for start in range(0, len(lines), 1000):
            store.write(_pending(lines[start : start + 1000]))
        elapsed = time.perf_counter() - started
        store.close()
    return len(lines) / elapsed


def store_concurrent(
    lines: list[str], threads: int, max_batch: int, sync: str = "full"
) -> dict[str, float]:
    """One record per call from `threads` threads (validation included, as over HTTP)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(tmp, sync=sync, group_commit_max_batch=max_batch)
        chunks = [lines[i::threads] for i in range(threads)]

        def work(chunk: list[str]) -> None:
            for line in chunk:
                store.write(_pending([line]))

        workers = [threading.Thread(target=work, args=(c,)) for c in chunks]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
        assert store.writer is not None
        commits = store.writer.commits
        store.close()
    return {"records_per_s": len(lines) / elapsed, "mean_batch": len(lines) / max(commits, 1)}


def run(lines: list[str], concurrent_lines: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    results["floor_rps"] = round(floor(lines))
    results["store_bulk_rps"] = round(store_bulk(lines))
    results["bulk_vs_floor"] = round(results["store_bulk_rps"] / results["floor_rps"], 3)
    group = store_concurrent(concurrent_lines, 32, 512)
    single = store_concurrent(concurrent_lines, 32, 1)
    results["store_group_commit_rps"] = round(group["records_per_s"])
    results["store_group_commit_mean_batch"] = round(group["mean_batch"], 1)
    results["store_one_per_txn_rps"] = round(single["records_per_s"])
    results["group_commit_gain"] = round(group["records_per_s"] / single["records_per_s"], 2)
    return results
