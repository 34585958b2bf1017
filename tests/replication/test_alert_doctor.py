"""The shipped replication alert fires on lag (promtool), and `stemedb doctor` reports
on Litestream of a running primary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.e2ekit import ServerFactory, poll
from tests.replication.replkit import free_addr, metric

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "packaging" / "monitoring" / "alerts.yml"


def test_replication_alert_fires_on_lag_only(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing (apt-get install prometheus)"
    doc = yaml.safe_load(ALERTS.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc))
    labels = {"job": "stemedb", "instance": "a"}
    lag = 'stemedb_replication_lag_seconds{job="stemedb", instance="a"}'
    tests = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                # caught up, a burst of 5 s, then stuck: the lag grows 60 s a minute
                "input_series": [{"series": lag, "values": "0 0 5 0 60 120 180 240"}],
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": "StemeDBReplicationLagging", "exp_alerts": []},
                    {"eval_time": "5m", "alertname": "StemeDBReplicationLagging", "exp_alerts": []},
                    {
                        "eval_time": "7m",
                        "alertname": "StemeDBReplicationLagging",
                        "exp_alerts": [{"exp_labels": {**labels, "severity": "critical"}}],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    out = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_doctor_reports_litestream(server_factory: ServerFactory, tmp_path: Path) -> None:
    addr = free_addr()
    env = {"STEMEDB_REPLICA_URL": f"file://{tmp_path / 'r'}", "STEMEDB_LITESTREAM_ADDR": addr}
    server = server_factory(env)
    poll(lambda: metric(server.api, "stemedb_replication_up") == 1.0, timeout=15)
    doctor_env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    doctor_env.update(env, STEMEDB_DB_DIR=str(server.base / "db"))
    out = subprocess.run(
        [sys.executable, "-m", "stemedb.cli.main", "doctor", "--format", "json"],
        capture_output=True,
        text=True,
        env=doctor_env,
        timeout=60,
    )
    found = [f for f in json.loads(out.stdout)["findings"] if f["check"] == "replication"]
    assert len(found) == 1 and found[0]["status"] == "ok", found
    assert f"Litestream at {addr}: txid" in found[0]["detail"]
    server.proc.stop()
    out = subprocess.run(
        [sys.executable, "-m", "stemedb.cli.main", "doctor", "--format", "json"],
        capture_output=True,
        text=True,
        env=doctor_env,
        timeout=60,
    )
    found = [f for f in json.loads(out.stdout)["findings"] if f["check"] == "replication"]
    assert found[0]["status"] == "warn" and "not answering" in found[0]["detail"], found
    assert found[0]["action"].endswith("docs/operations/runbooks/replication.md")
