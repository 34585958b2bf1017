"""Durable bulk ingest, measured side by side in one run.

Each round runs every method once on a fresh database, in the same order, on
the same signed records; the report gives each method's median over rounds
and the median of its per-round ratio to the floor (so machine noise that
hits a whole round cancels out).

* floor: the irreducible work only — SHA3 of each body, Ed25519 verification,
  and inserting the same journal + assertion rows (same schema, same indexes)
  through apsw in 1,000-row transactions, one thread;
* store_bulk: `Store.write` in 1,000-record calls, validation included, in process;
* http_batch_1 / http_batch_2: NDJSON chunks of 1,000 to `POST /v1/assert/batch`
  of a real server, from one client (what `stemedb import --url` does) and from
  two concurrent clients;
* cli_import_db: `python -m stemedb.cli.main import FILE --db DIR` into a
  stopped database, wall clock of the whole process (interpreter start included).

Plus in-process group commit: 32 threads writing one record per call, group
commit on vs `max_batch=1` (the HTTP version of this is in `bench.writes`).
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.server import Server, work_dir
from stemedb.canonical import canonical_json
from stemedb.config import Settings
from stemedb.crypto import sha3_256, signing_message, verify_signature
from stemedb.records import SourceClass, prepare_record
from stemedb.store import PendingRecord, Store, schema
from stemedb.store.journal import ZERO_CHAIN, next_chain

NDJSON = {"Content-Type": "application/x-ndjson"}
CHUNK = 1000


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
    with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
        conn = schema.connect(Path(tmp) / "floor.db", sync=sync)
        schema.apply_migrations(conn)
        started = time.perf_counter()
        chain, seq = ZERO_CHAIN, 0
        for start in range(0, len(lines), CHUNK):
            conn.execute("BEGIN IMMEDIATE")
            for line in lines[start : start + CHUNK]:
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
    with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
        store = _store(tmp, sync=sync)
        started = time.perf_counter()
        for start in range(0, len(lines), CHUNK):
            store.write(_pending(lines[start : start + CHUNK]))
        elapsed = time.perf_counter() - started
        store.close()
    return len(lines) / elapsed


def store_concurrent(
    lines: list[str], threads: int, max_batch: int, sync: str = "full"
) -> dict[str, float]:
    """One record per call from `threads` threads (validation included, as over HTTP)."""
    with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
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


def http_batch(
    lines: list[str],
    clients: int = 1,
    chunk: int = CHUNK,
    env: dict[str, str] | None = None,
    probe: Callable[[Server], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """NDJSON chunks to a fresh server (`env` added to its environment) from `clients`
    concurrent connections; `probe(server)`'s answer is merged in before it stops."""
    bodies = [
        ("\n".join(lines[s : s + chunk]) + "\n").encode() for s in range(0, len(lines), chunk)
    ]
    with tempfile.TemporaryDirectory(prefix="stemedb-bench-", dir=work_dir()) as tmp:
        srv = Server(Path(tmp), env=env)
        try:
            todo: queue.Queue[bytes] = queue.Queue()
            for body in bodies:
                todo.put(body)
            failures: list[str] = []

            def client() -> None:
                while True:
                    try:
                        body = todo.get_nowait()
                    except queue.Empty:
                        return
                    status, answer = srv.request("POST", "/v1/assert/batch", body, NDJSON)
                    if status != 200 or json.loads(answer)["created"] != body.count(b"\n"):
                        failures.append(f"{status} {answer[:300]!r}")

            cpu0 = srv.cpu_s()
            workers = [threading.Thread(target=client) for _ in range(clients)]
            started = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.perf_counter() - started
            cpu = srv.cpu_s() - cpu0
            if failures:
                raise RuntimeError(f"batch import failed: {failures[0]}")
            rss = srv.rss_mb()
            probed = probe(srv) if probe is not None else {}
        finally:
            srv.stop()
    return {
        "rps": len(lines) / elapsed,
        "server_cpu_cores": cpu / elapsed,
        "server_rss_mb": rss,
        **probed,
    }


def cli_import_db(path: Path) -> dict[str, Any]:
    """`stemedb import FILE --db DIR` as a user runs it: wall clock and its CPU."""
    lines = sum(1 for _ in path.open())
    with tempfile.TemporaryDirectory(prefix="stemedb-bench-", dir=work_dir()) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "stemedb.cli.main",
            "import",
            str(path),
            "--db",
            str(Path(tmp) / "db"),
            "--progress-file",
            str(Path(tmp) / "progress"),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
        env["STEMEDB_SYNC"] = "full"
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        out, err = proc.communicate()
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"stemedb import failed: {err.decode()[-2000:]}")
        summary = json.loads(out)
        if summary["created"] != lines:
            raise RuntimeError(f"stemedb import created {summary['created']} of {lines}")
    return {"rps": lines / elapsed}


def _med(values: list[float], digits: int = 0) -> float:
    return round(statistics.median(values), digits) if values else float("nan")


def run(lines: list[str], concurrent_lines: list[str], *, rounds: int = 3) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".ndjson", dir=work_dir(), delete=False) as handle:
        handle.write("".join(line + "\n" for line in lines))
        file = Path(handle.name)
    per_round: list[dict[str, float]] = []
    try:
        for r in range(rounds):
            row: dict[str, float] = {}
            row["floor"] = floor(lines)
            row["store_bulk"] = store_bulk(lines)
            one = http_batch(lines, clients=1)
            row["http_batch_1"] = one["rps"]
            row["http_batch_1_server_cpu_cores"] = one["server_cpu_cores"]
            two = http_batch(lines, clients=2)
            row["http_batch_2"] = two["rps"]
            row["http_batch_2_server_cpu_cores"] = two["server_cpu_cores"]
            row["cli_import_db"] = cli_import_db(file)["rps"]
            per_round.append(row)
            print(
                f"  ingest round {r + 1}/{rounds}: "
                + json.dumps({k: round(v, 2) for k, v in row.items()}),
                flush=True,
            )
    finally:
        file.unlink()
    results: dict[str, Any] = {"records": len(lines), "rounds": rounds, "per_round": per_round}
    for key in ("floor", "store_bulk", "http_batch_1", "http_batch_2", "cli_import_db"):
        results[f"{key}_rps"] = _med([row[key] for row in per_round])
        if key != "floor":
            results[f"{key}_vs_floor"] = _med([row[key] / row["floor"] for row in per_round], 3)
    for key in ("http_batch_1", "http_batch_2"):
        results[f"{key}_server_cpu_cores"] = _med(
            [row[f"{key}_server_cpu_cores"] for row in per_round], 2
        )
    group = store_concurrent(concurrent_lines, 32, 512)
    single = store_concurrent(concurrent_lines, 32, 1)
    results["store_group_commit_rps"] = round(group["records_per_s"])
    results["store_group_commit_mean_batch"] = round(group["mean_batch"], 1)
    results["store_one_per_txn_rps"] = round(single["records_per_s"])
    results["store_group_commit_gain"] = round(group["records_per_s"] / single["records_per_s"], 2)
    return results
