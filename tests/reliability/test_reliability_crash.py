"""Crash safety: `kill -9` at random moments and SIGTERM under load lose no acknowledged write.

The harness (crash_harness.py) drives the real server process; these tests
only choose the schedule and assert on the figures. More kills on demand:

    STEMEDB_CRASH_KILLS=200 .venv/bin/pytest tests/reliability/test_reliability_crash.py -s
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import apsw
import pytest
from crash_harness import ACK, REFUSED, CrashHarness, StartServer, kills_from_env
from rel_support import RELIABILITY_ENV, file_head, http_json, verify_ok

from stemedb.store import schema

SEED = int(os.environ.get("STEMEDB_CRASH_SEED", "20261127"))
KILLS = kills_from_env()
# Fast restarts: the chain tail checked at start is small; verify() covers the whole chain.
ENV = {**RELIABILITY_ENV, "STEMEDB_VERIFY_TAIL": "64", "STEMEDB_THREADS": "8"}


@pytest.mark.timeout(120 + 10 * KILLS)
def test_acknowledged_writes_survive_kill9_at_random_moments(
    run_server_process: StartServer, tmp_path: Path
) -> None:
    harness = CrashHarness(tmp_path, run_server_process, seed=SEED, env=ENV)
    while harness.report.kills < KILLS:
        harness.kill_round()
    report = harness.final_check()
    print("CRASH-REPORT", json.dumps(report.as_dict()))
    assert report.kills >= KILLS
    assert report.acked >= 5 * KILLS, "too few writes acknowledged to prove anything"
    assert report.in_doubt_present + report.in_doubt_absent > 0, "no kill hit a write in flight"
    assert report.journal_seq == report.acked + report.in_doubt_present
    assert set(report.statuses) <= {"200", "201", "200 batch"} | {
        s for s in report.statuses if s.startswith("no answer")
    }


def test_sigterm_under_load_drains_answers_everything_and_exits_0(
    run_server_process: StartServer, tmp_path: Path
) -> None:
    harness = CrashHarness(tmp_path, run_server_process, seed=SEED + 1, env=ENV, clients=6)
    code, server = harness.sigterm_round(load_seconds=1.5)
    assert code == 0, server.output[-3000:]
    assert "stopping (SIGTERM)" in server.output and server.output.rstrip().endswith("stopped")
    report = harness.final_check()  # unanswered writes must be absent after a graceful stop
    print("SIGTERM-REPORT", json.dumps(report.as_dict()))
    assert report.acked > 0
    assert report.in_doubt_present == 0
    allowed = {"200", "201", "200 batch", "503 unavailable"}
    unexplained = {s for s in report.statuses if s not in allowed and not s.startswith("no answer")}
    assert not unexplained, report.statuses
    assert harness.ledger.count(ACK) + harness.ledger.count(REFUSED) > 0


def test_first_start_killed_between_migrations_and_header_frame_recovers(
    run_server_process: StartServer, tmp_path: Path
) -> None:
    """The window of a kill -9 during the very first start: schema created, no frame yet."""
    db = tmp_path / "db" / "stemedb.db"
    db.parent.mkdir(parents=True)
    conn = schema.connect(db)
    schema.apply_migrations(conn)
    conn.close()
    server = run_server_process(ENV)
    assert server.returncode is None, server.output[-3000:]
    status, _, health = http_json("GET", server.url + "/v1/health")
    assert status == 200 and health["journal_seq"] == 0
    assert server.stop(signal.SIGTERM) == 0
    verify_ok(db, full=True)


def test_a_journal_that_lost_its_header_frame_is_still_refused(
    run_server_process: StartServer, tmp_path: Path
) -> None:
    """The recovery above must not paper over a journal whose header frame was removed."""
    server = run_server_process(ENV)
    assert server.stop(signal.SIGTERM) == 0
    db = tmp_path / "db" / "stemedb.db"
    seq, _ = file_head(db)
    conn = apsw.Connection(str(db))
    conn.execute("DROP TRIGGER journal_no_delete")
    conn.execute("DELETE FROM journal WHERE seq = 0")
    conn.close()
    assert seq == 0
    again = run_server_process(ENV)
    again.wait(30)
    assert again.returncode == 1
    assert "journal header frame (seq 0) is missing" in again.output
