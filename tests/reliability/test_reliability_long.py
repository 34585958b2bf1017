"""The long runs, on demand only (`-m slow`; the default run excludes them):

    .venv/bin/pytest -m slow tests/reliability -s

* 200 `kill -9`s (or STEMEDB_CRASH_KILLS) through the crash harness;
* schemathesis with 100 cases per operation (or STEMEDB_FUZZ_EXAMPLES);
* a 90-second soak through `python -m bench.soak` (flat memory, zero errors).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from crash_harness import CrashHarness, StartServer, kills_from_env
from fuzz_support import judge, run_schemathesis
from rel_support import RELIABILITY_ENV, live_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LONG_KILLS = kills_from_env(200)
LONG_EXAMPLES = int(os.environ.get("STEMEDB_FUZZ_EXAMPLES", "100"))
ENV = {**RELIABILITY_ENV, "STEMEDB_VERIFY_TAIL": "64", "STEMEDB_THREADS": "8"}


@pytest.mark.timeout(300 + 10 * LONG_KILLS)
def test_many_kills_lose_no_acknowledged_write(
    run_server_process: StartServer, tmp_path: Path
) -> None:
    harness = CrashHarness(tmp_path, run_server_process, seed=9001, env=ENV)
    while harness.report.kills < LONG_KILLS:
        harness.kill_round()
    report = harness.final_check()
    print("CRASH-REPORT", json.dumps(report.as_dict()))
    assert report.kills >= LONG_KILLS and report.acked > 0


@pytest.mark.timeout(3600)
def test_schemathesis_deeper_run(tmp_path: Path) -> None:
    env = {"STEMEDB_REQUIRE_SIGNATURES": "false", "STEMEDB_THREADS": "8"}
    with live_server(tmp_path / "server", env) as server:
        run = run_schemathesis(server.url, tmp_path, LONG_EXAMPLES)
    print("SCHEMATHESIS-REPORT", json.dumps(run.summary()))
    judge(run)


@pytest.mark.timeout(600)
def test_ninety_second_soak_is_flat_and_error_free(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = [sys.executable, "-m", "bench.soak", "--minutes", "1.5", "--json", str(out)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    print("SOAK-REPORT", json.dumps({k: v for k, v in report.items() if k != "samples"}))
    assert report["errors"] == 0 and report["requests"] > 1000
    assert report["rss_growth_mb"] < 30, report["samples"]
    assert report["fds_end"] <= report["fds_after_warmup"] + 4, report["samples"]
