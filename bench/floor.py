"""HTTP batch ingest against the strict floor, side by side (issue 21, part 2).

    python -m bench.floor                    # 20,000 records, 5 alternating rounds
    python -m bench.floor --records 5000 --rounds 1     # a smoke run
    python -m bench.floor --gil              # only the GIL probe
    python -m bench.floor --stages           # CPU µs per record of each batch-path stage

The strict floor is what no implementation of a signed, durable journal can
skip: the digests are computed before the clock starts (untimed), then per
record one Ed25519 verification (`stemedb.crypto.verify_signature`, one
thread) and two inserts through apsw: the journal row (the product's own
`journal` table, its UNIQUE hash index included) and one covering-index row
(a WITHOUT ROWID table holding the columns of the `assertions_lens` index,
one b-tree row per record); 1,000-row transactions, `synchronous=FULL`, WAL.

Against it, in the same round: `POST /v1/assert/batch` of a real server
process, NDJSON chunks of 1,000 records from one client, with the default
`STEMEDB_VERIFY_THREADS` (one verify thread per CPU) and with
`STEMEDB_VERIFY_THREADS=1` (the serial path, as before the pool). Each round
runs the three in a rotating order on fresh databases; the report gives each
one's median and the median of its per-round ratio to the floor.

The GIL probe: Ed25519 verifications/s from one thread vs two threads (each
half the work). A speed-up near the core count means the verify call runs
with the GIL released (cffi's default for PyNaCl's libsodium calls).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import datasets
from bench.ingest import CHUNK, http_batch
from bench.server import Server, loadavg, work_dir
from stemedb.canonical import canonical_json
from stemedb.crypto import sha3_256, sign, signing_message, verify_signature
from stemedb.records import SourceClass
from stemedb.store import schema
from stemedb.store.journal import ZERO_CHAIN, next_chain

LENS_TABLE = """
CREATE TABLE lens_floor (
  subject TEXT NOT NULL, predicate TEXT NOT NULL, timestamp INTEGER NOT NULL,
  hash BLOB NOT NULL, value_key TEXT NOT NULL, confidence REAL NOT NULL,
  tier INTEGER NOT NULL, agent_id BLOB, lifecycle TEXT NOT NULL, epoch BLOB,
  written_ms INTEGER NOT NULL,
  PRIMARY KEY (subject, predicate, timestamp DESC, hash)
) WITHOUT ROWID
"""
JOURNAL_INSERT = "INSERT INTO journal VALUES (?, 'assertion', ?, ?, ?, ?)"
LENS_INSERT = "INSERT INTO lens_floor VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)"

Row = tuple[str, str, bytes, tuple[Any, ...], tuple[Any, ...]]

VARIANTS = ("floor", "http_verify_pool", "http_verify_serial")


def _precompute(lines: list[str]) -> list[Row]:
    """Everything but the verification and the inserts, done before the clock starts."""
    rows: list[Row] = []
    chain, written = ZERO_CHAIN, int(time.time() * 1000)
    for seq, line in enumerate(lines, start=1):
        record = json.loads(line)
        unsigned = {k: v for k, v in record.items() if k != "signatures"}
        digest = sha3_256(canonical_json(unsigned).encode())
        sig = record["signatures"][0]
        frame_hash = sha3_256(line.encode())
        chain = next_chain(chain, frame_hash, written)
        obj = record["object"]
        lens = (
            record["subject"],
            record["predicate"],
            record["timestamp"],
            frame_hash,
            json.dumps(obj, separators=(",", ":")),
            record["confidence"],
            int(SourceClass[record["source_class"]]),
            bytes.fromhex(sig["agent_id"]),
            record["lifecycle"],
            written,
        )
        message = signing_message("assertion", digest)
        rows.append(
            (
                sig["agent_id"],
                sig["signature"],
                message,
                (seq, frame_hash, line, written, chain),
                lens,
            )
        )
    return rows


def strict_floor(rows: list[Row]) -> dict[str, float]:
    """Records/s (and CPU µs per record): verify + journal row + one covering-index
    row, 1,000 per transaction."""
    with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
        conn = schema.connect(Path(tmp) / "floor.db", sync="full")
        schema.apply_migrations(conn)
        conn.execute(LENS_TABLE)
        started, cpu0 = time.perf_counter(), time.process_time()
        for start in range(0, len(rows), CHUNK):
            conn.execute("BEGIN IMMEDIATE")
            for agent, signature, message, journal_row, lens_row in rows[start : start + CHUNK]:
                if not verify_signature(agent, signature, message):
                    raise AssertionError("floor: a dataset signature failed to verify")
                conn.execute(JOURNAL_INSERT, journal_row)
                conn.execute(LENS_INSERT, lens_row)
            conn.execute("COMMIT")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
        conn.close()
    return {"rps": len(rows) / elapsed, "cpu_us": cpu / len(rows) * 1e6}


def off_core_cpu_s(server: Server) -> dict[str, Any]:
    """CPU seconds of the server's threads allowed on more CPUs than its main thread:
    the verify pool's threads, which leave the `auto`-pinned core."""
    pid = server.pid
    main = _allowed(f"/proc/{pid}/status")
    ticks = os.sysconf("SC_CLK_TCK")
    spread = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if _allowed(str(task / "status")) != main:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                spread += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return {"off_core_cpu_s": spread}


def _allowed(status_path: str) -> str:
    for line in Path(status_path).read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    return ""


def gil_probe(count: int = 4000, rounds: int = 3) -> dict[str, Any]:
    """Verifications/s from one thread vs two threads sharing the same work."""
    seed = bytes(range(32))
    from stemedb.crypto import public_key_hex

    agent = public_key_hex(seed)
    messages = [os.urandom(43) for _ in range(count)]
    checks = [(agent, sign(seed, m), m) for m in messages]

    def work(part: list[tuple[str, str, bytes]]) -> None:
        for check in part:
            assert verify_signature(*check)

    one, two = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        work(checks)
        one.append(count / (time.perf_counter() - started))
        halves = [checks[: count // 2], checks[count // 2 :]]
        threads = [threading.Thread(target=work, args=(h,)) for h in halves]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        two.append(count / (time.perf_counter() - started))
    return {
        "verifies_per_s_1_thread": round(statistics.median(one)),
        "verifies_per_s_2_threads": round(statistics.median(two)),
        "speedup": round(statistics.median(b / a for a, b in zip(one, two, strict=True)), 2),
        "us_per_verify": round(1e6 / statistics.median(one), 1),
    }


def run(lines: list[str], *, rounds: int = 5) -> dict[str, Any]:
    rows = _precompute(lines)
    env_pool: dict[str, str] = {}  # the default: STEMEDB_VERIFY_THREADS=0, one per CPU
    env_serial = {"STEMEDB_VERIFY_THREADS": "1"}
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "floor": lambda: strict_floor(rows),
        "http_verify_pool": lambda: http_batch(
            lines, clients=1, env=env_pool, probe=off_core_cpu_s
        ),
        "http_verify_serial": lambda: http_batch(
            lines, clients=1, env=env_serial, probe=off_core_cpu_s
        ),
    }
    per_round: list[dict[str, float]] = []
    for r in range(rounds):
        row: dict[str, float] = {}
        order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]  # rotate: no variant always goes first
        for name in order:
            answer = runs[name]()
            row[name] = answer["rps"]
            if "server_cpu_cores" in answer:
                row[f"{name}_server_cpu_cores"] = answer["server_cpu_cores"]
                # CPU per record: less sensitive than the rate to what else the machine runs
                row[f"{name}_cpu_us"] = answer["server_cpu_cores"] / answer["rps"] * 1e6
                # the share of the server's CPU its verify threads spent off the pinned core
                cpu_s = answer["server_cpu_cores"] * len(lines) / answer["rps"]
                row[f"{name}_off_core_share"] = answer["off_core_cpu_s"] / max(cpu_s, 1e-9)
            else:
                row[f"{name}_cpu_us"] = answer["cpu_us"]
        row["loadavg"] = loadavg()
        per_round.append(row)
        print(
            f"  floor round {r + 1}/{rounds}: "
            + json.dumps({k: round(v, 2) for k, v in row.items()}),
            flush=True,
        )
    out: dict[str, Any] = {"records": len(lines), "rounds": rounds, "per_round": per_round}
    for name in VARIANTS:
        out[f"{name}_rps"] = round(statistics.median(row[name] for row in per_round))
        out[f"{name}_cpu_us"] = round(
            statistics.median(row[f"{name}_cpu_us"] for row in per_round), 1
        )
        if name != "floor":
            out[f"{name}_vs_floor"] = round(
                statistics.median(row[name] / row["floor"] for row in per_round), 3
            )
            for stat in ("server_cpu_cores", "off_core_share"):
                out[f"{name}_{stat}"] = round(
                    statistics.median(row[f"{name}_{stat}"] for row in per_round), 2
                )
    out["pool_vs_serial"] = round(
        statistics.median(row["http_verify_pool"] / row["http_verify_serial"] for row in per_round),
        3,
    )
    out["gil_probe"] = gil_probe()
    out["loadavg_end"] = loadavg()
    return out


def markdown(res: dict[str, Any]) -> str:
    rows = [
        ("strict floor: Ed25519 verify + journal row + one covering-index row", "floor"),
        ("`POST /v1/assert/batch`, 1,000/request, verify pool (default)", "http_verify_pool"),
        ("the same, `STEMEDB_VERIFY_THREADS=1` (serial)", "http_verify_serial"),
    ]
    out = [
        f"{res['records']:,} signed assertions, {res['rounds']} alternating rounds, medians",
        "",
        "| method | records/s | × floor | server cores | CPU µs/record |",
        "|---|---|---|---|---|",
    ]
    for label, key in rows:
        ratio = res.get(f"{key}_vs_floor", 1.0)
        cores = res.get(f"{key}_server_cpu_cores", "—")
        out.append(
            f"| {label} | {res[f'{key}_rps']:,} | {ratio:.3f} | {cores} | {res[f'{key}_cpu_us']} |"
        )
    g = res["gil_probe"]
    out += [
        "",
        f"Verify pool vs serial, per round: {res['pool_vs_serial']}×; share of the server's CPU "
        f"spent by threads off its pinned core: {res.get('http_verify_pool_off_core_share')} "
        f"(pool), {res.get('http_verify_serial_off_core_share')} (serial). GIL probe: "
        f"{g['verifies_per_s_1_thread']:,} verifies/s on 1 thread ({g['us_per_verify']} µs), "
        f"{g['verifies_per_s_2_threads']:,} on 2 threads ({g['speedup']}×). "
        f"Load average {res['per_round'][0]['loadavg']} after round 1, "
        f"{res.get('loadavg_end')} at the end.",
    ]
    return "\n".join(out)


def stages(lines: list[str]) -> dict[str, float]:
    """CPU µs per record of each stage of the batch path, one after the other:
    where the HTTP batch's time goes beside the floor's."""
    from stemedb.config import DEFAULT_SCHEME_TIERS
    from stemedb.http.wire import loads_strict
    from stemedb.records.prepare import _draft, _validate
    from stemedb.store import PendingRecord, Store

    now = int(time.time())
    sample = lines[: min(3000, len(lines) // 2)]
    raw = [line.encode() for line in sample]
    payloads = [json.loads(line) for line in sample]

    def draft(payload: Any) -> Any:
        return _draft(
            "assertion",
            payload,
            now_s=now,
            scheme_tiers=DEFAULT_SCHEME_TIERS,
            require_signatures=True,
        )

    drafts = [draft(p) for p in payloads]

    def timed(fn: Callable[[], object]) -> float:
        best = []
        for _ in range(3):
            started = time.thread_time()
            fn()
            best.append((time.thread_time() - started) / len(sample) * 1e6)
        return round(min(best), 1)

    out = {
        "ndjson_line_parse_us": timed(lambda: [loads_strict(b) for b in raw]),
        "validate_us": timed(lambda: [_validate("assertion", p, now) for p in payloads]),
        "draft_us": timed(lambda: [draft(p) for p in payloads]),
        "verify_us": timed(lambda: [verify_signature(*d.checks()[0]) for d in drafts]),
    }
    pending = []
    for d in (draft(json.loads(line)) for line in lines[len(sample) : len(sample) + 6000]):
        record = dict(d.record, signatures=d.ordered)
        pending.append(
            PendingRecord(
                "assertion", sha3_256(d.body.encode()), d.body, record, now * 1000, d.digest
            )
        )
    with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
        from stemedb.config import Settings

        store = Store(Settings(db_dir=Path(tmp), sync="full")).open()
        started = time.process_time()  # the writer thread's CPU included
        for start in range(0, len(pending), CHUNK):
            store.write(pending[start : start + CHUNK])
        out["store_write_us"] = round((time.process_time() - started) / len(pending) * 1e6, 1)
        store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.floor", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gil", action="store_true", help="only the GIL probe")
    parser.add_argument("--stages", action="store_true", help="only CPU per stage")
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)
    if args.gil:
        print(json.dumps(gil_probe()))
        return 0
    lines = datasets.load_lines(datasets.signed_lines(args.records, prefix="floor"))
    if args.stages:
        print(json.dumps(stages(lines)))
        return 0
    res = run(lines, rounds=args.rounds)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
