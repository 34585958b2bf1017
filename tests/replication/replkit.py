"""Helpers for the replication tests: Litestream restores, journal reads, writers."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from stemedb.replication import litestream
from tests.e2ekit import Agent, Api, unique


def free_addr() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def restore(url: str, out: Path, env: dict[str, str] | None = None) -> None:
    """`litestream restore -o OUT URL` (the storage's newest position)."""
    subprocess.run(
        [str(litestream.binary()), "restore", "-o", str(out), url],
        check=True,
        capture_output=True,
        timeout=120,
        env=env,
    )


def journal(db: Path) -> list[tuple[int, bytes, bytes]]:
    """Every frame's (seq, hash, chain), read-only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT seq, hash, chain FROM journal ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [(int(s), bytes(h), bytes(c)) for s, h, c in rows]


def head_seq(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT coalesce(max(seq), 0) FROM journal").fetchone()[0])
    finally:
        conn.close()


def metric(api: Api, name: str) -> float | None:
    text = api.call("GET", "/metrics", timeout=5).body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class Writer(threading.Thread):
    """Writes small batches until stopped; keeps every acknowledged (seq, hash, at)."""

    def __init__(self, api: Api, batch: int = 5) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.batch = batch
        self.agent = Agent()
        self.acked: list[tuple[int, str, float]] = []
        self.errors = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            records = [self.agent.assertion(f"repl/{unique()}", "p", i) for i in range(self.batch)]
            try:
                resp = self.api.post("/v1/assert/batch", records, timeout=10)
            except OSError:
                self.errors += 1
                return  # the server is gone (the drill kills it)
            if resp.status != 200:
                self.errors += 1
                continue
            now = time.monotonic()
            for result in resp.json["results"]:
                if result["status"] == "created":
                    self.acked.append((int(result["seq"]), result["hash"], now))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def frames(rows: list[tuple[int, bytes, bytes]]) -> dict[int, Any]:
    return {seq: (h, c) for seq, h, c in rows}


def restored_equals(url: str, out: Path, primary: Path) -> bool:
    """Restore the storage's newest state into `out`: is its journal the primary's?

    Poll this: the lag probe confirms Litestream's local copy, and the upload to the
    storage follows within its sync interval."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    try:
        restore(url, out)
    except subprocess.CalledProcessError:
        return False
    return journal(out) == journal(primary)
