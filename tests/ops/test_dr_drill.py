"""Issue #6 §8, the disaster-recovery drill, end to end with real processes.

A server takes signed writes; `stemedb backup` runs in the middle of the load;
writes continue and are archived in three rounds; the database is deleted;
`stemedb restore` brings it back to a chosen seq, to a point in time and to
"latest", and each result is proved frame by frame against what the live
server had written (seq, hash and chain of every frame, and the counts). The
restored file then serves again.
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from ops_support import count, file_head, frames, run_cli, signed_assertions
from serverkit import StartServer, http_json, server_env

from stemedb.crypto import generate_signing_key
from stemedb.ops import archive

BATCH = 20


def _post(url: str, records: list[dict[str, Any]]) -> None:
    status, _, body = http_json("POST", url + "/v1/assert/batch", records)
    assert status == 200, body
    assert body["created"] == len(records), body


def _seq(url: str) -> int:
    status, _, body = http_json("GET", url + "/v1/health")
    assert status == 200, body
    return int(body["journal_seq"])


def _cli(env: dict[str, str], *args: str | Path) -> dict[str, Any]:
    result = run_cli(*args, env=env)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_disaster_recovery_drill(tmp_path: Path, run_server_process: StartServer) -> None:
    started = time.monotonic()
    env = server_env(tmp_path)
    db = tmp_path / "db" / "stemedb.db"
    wal = tmp_path / "wal"
    server = run_server_process()
    url = server.url
    seed = generate_signing_key()

    # 1. Load while serving; back up in the middle of it.
    stop = threading.Event()
    failures: list[BaseException] = []

    def load() -> None:
        try:
            for n in itertools.count():
                if stop.is_set():
                    return
                _post(url, signed_assertions(BATCH, f"a{n}", seed))
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        while _seq(url) < 200 and not failures:
            time.sleep(0.02)
        seq_before_backup = _seq(url)
        made = _cli(env, "backup")
        seq_after_backup = _seq(url)
        while _seq(url) < seq_after_backup + 3 * BATCH and not failures:
            time.sleep(0.02)
    finally:
        stop.set()
        loader.join()
    assert not failures, failures
    backup_dir = Path(made["path"])
    backup_seq = made["journal_seq"]
    assert seq_before_backup <= backup_seq <= seq_after_backup, "backup not taken mid-load"
    assert backup_seq < _seq(url), "writes continued after the backup"

    # 2. Archive, keep writing, archive again (and again).
    round1 = _cli(env, "archive")
    h1 = _seq(url)
    assert round1["last_archived_seq"] == h1
    for n in range(10):
        _post(url, signed_assertions(BATCH, f"b{n}", seed))
    round2 = _cli(env, "archive")
    h2 = _seq(url)
    assert round2["sealed"] == [archive.segment_name(h1 + 1, h2)]
    time.sleep(0.02)
    cut = time.time()
    time.sleep(0.02)
    for n in range(10):
        _post(url, signed_assertions(BATCH, f"c{n}", seed))
    round3 = _cli(env, "archive")
    h3 = _seq(url)
    assert round3["sealed"] == [archive.segment_name(h2 + 1, h3)]
    assert _cli(env, "archive")["sealed"] == []  # idempotent

    live = frames(db)  # (seq, hash, chain) of everything the server wrote
    assert live[-1][0] == h3 and len(live) == h3 + 1
    live_assertions = count(db)
    assert server.stop() == 0

    # 3. Disaster: the database is gone.
    shutil.rmtree(tmp_path / "db")

    # 4a. To a chosen seq, inside the second archive round.
    point = h1 + 57
    out = _cli(
        env, "restore", backup_dir, "--wal-dir", wal, "--until-seq", str(point), "--target", db
    )
    assert (out["journal_seq"], out["chain_head"]) == (point, live[point][2])
    assert out["base_seq"] == backup_seq and out["frames_replayed"] == point - backup_seq
    assert frames(db) == live[: point + 1]
    assert count(db) == point  # every frame after the header is one assertion

    # 4b. Never over an existing database without --force.
    refused = run_cli("restore", backup_dir, "--wal-dir", wal, "--target", db, env=env)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert file_head(db) == (point, live[point][2])

    # 4c. To a point in time (between the second and third rounds).
    out = _cli(
        env,
        "restore",
        backup_dir,
        "--wal-dir",
        wal,
        "--until-time",
        f"{cut:.3f}",
        "--target",
        db,
        "--force",
    )
    assert frames(db) == live[: h2 + 1]

    # 4d. To the latest archived frame.
    out = _cli(env, "restore", backup_dir, "--wal-dir", wal, "--target", db, "--force")
    assert (out["journal_seq"], out["chain_head"]) == (h3, live[-1][2])
    assert frames(db) == live and count(db) == live_assertions == h3
    assert out["verify_ok"] is True

    # 4e. Without any backup, from the segments alone: the same chain head.
    rebuilt = tmp_path / "from-archive.db"
    out = _cli(env, "restore", "--from-archive", "--wal-dir", wal, "--target", rebuilt)
    assert frames(rebuilt) == live

    # 5. The restored database serves and takes new writes.
    again = run_server_process()
    status, _, health = http_json("GET", again.url + "/v1/health")
    assert status == 200
    assert (health["journal_seq"], health["chain_head"]) == (h3, live[-1][2])
    assert health["assertion_count"] == h3
    _post(again.url, signed_assertions(5, "after", seed))
    assert _seq(again.url) == h3 + 5
    after = _cli(env, "archive")  # the archive continues the restored journal seamlessly
    assert after["sealed"] == [archive.segment_name(h3 + 1, h3 + 5)]
    assert again.stop() == 0
    assert _cli(env, "verify", "--full")["ok"] is True

    print(
        f"\nDR drill: backup at seq {backup_seq} (taken while load went {seq_before_backup}"
        f"->{seq_after_backup}), archived to {h1}/{h2}/{h3}; restored --until-seq {point}, "
        f"--until-time -> {h2}, latest -> {h3} ({h3 - backup_seq} frames replayed), "
        f"chain head {live[-1][2][:16]}…; {time.monotonic() - started:.1f} s"
    )
