"""Per-agent circuit breakers (issue 19 item 3) against a real server process.

An agent whose writes are mostly refused, or whose write rate jumps far
above its history, is tripped: its writes get 429 `breaker_open` with the
reason and the reset time, other agents keep writing, an admin lists and
resets breakers, and /metrics and the shipped alert rule show the trips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from e2ekit import Agent, Api, ServerFactory, metric_value, unique

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "packaging" / "monitoring" / "alerts.yml"
BREAKERS = {
    "STEMEDB_RATE_LIMIT_WRITE": "0",
    "STEMEDB_RATE_LIMIT_READ": "0",
    "STEMEDB_BREAKER_ENABLED": "true",
    "STEMEDB_BREAKER_MIN_RECORDS": "5",
    "STEMEDB_BREAKER_REJECT_RATIO": "0.5",
    "STEMEDB_BREAKER_RATE_MIN": "30",
    "STEMEDB_BREAKER_RATE_FACTOR": "5",
    "STEMEDB_BREAKER_WINDOW": "600",
    "STEMEDB_BREAKER_OPEN_S": "900",
}


def _claim(agent: Agent, subject: str, value: str = "7 mg") -> dict[str, Any]:
    return agent.assertion(subject, "dose", value, 0.8, source=f"agent://{agent.id[:16]}")


def _bad_vote(agent: Agent) -> dict[str, Any]:
    """A well-signed vote on an assertion that does not exist: 404, the agent's fault."""
    return agent.record("vote", assertion_hash=unique("").ljust(64, "0")[:64], weight=1.0)


def _labelled(api: Api, name: str, **labels: str) -> float | None:
    text = api.call("GET", "/metrics", timeout=5).body.decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.split()[1])
    return None


def test_an_agent_refused_at_a_high_rate_is_tripped_and_reset(
    server_factory: ServerFactory,
) -> None:
    api = server_factory(BREAKERS).api
    bad, good = Agent(), Agent()
    assert _labelled(api, "stemedb_breaker_trips_total", reason="rejections") == 0.0
    for _ in range(5):
        assert api.post("/v1/vote", _bad_vote(bad)).status == 404
    # Five records, all refused: tripped. Its next write, even a good one, is 429.
    refused = api.post("/v1/assert", _claim(bad, f"drugs/{unique()}"))
    assert refused.status == 429, refused
    error = refused.error
    assert error["code"] == "breaker_open"
    assert "rejections" in error["message"] and "5 of its 5 records" in error["message"]
    assert re.search(r"until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", error["message"])
    assert "runbooks/abuse.md" in error["message"]
    assert 800 <= int(refused.header("Retry-After") or 0) <= 900
    # In a batch too; another agent is not affected.
    batch = api.post("/v1/assert/batch", [_claim(bad, f"drugs/{unique()}")])
    assert batch.status == 429 and batch.error["code"] == "breaker_open"
    assert api.post("/v1/assert", _claim(good, f"drugs/{unique()}")).status == 201

    listing = api.get_ok("/v1/admin/breakers")
    assert listing["enabled"] is True and listing["open"] == 1
    [entry] = listing["breakers"]
    assert entry["agent_id"] == bad.id and entry["reason"] == "rejections"
    assert entry["state"] == "open" and entry["trips"] == 1 and entry["retry_after_s"] > 800
    assert _labelled(api, "stemedb_breaker_trips_total", reason="rejections") == 1.0
    assert metric_value(api, "stemedb_breakers_open") == 1.0

    reset = api.ok("POST", f"/v1/admin/breakers/{bad.id}/reset")
    assert reset == {"agent_id": bad.id, "closed": 1}
    assert api.post("/v1/assert", _claim(bad, f"drugs/{unique()}")).status == 201
    assert metric_value(api, "stemedb_breakers_open") == 0.0
    assert api.get_ok("/v1/admin/breakers")["open"] == 0
    closed = api.get_ok("/v1/admin/breakers", {"include_closed": True})["breakers"]
    assert [b["state"] for b in closed] == ["closed"]
    bad_id = api.post("/v1/admin/breakers/xyz/reset")
    assert bad_id.status == 400 and bad_id.error["details"][0]["field"] == "agent_id"


def test_a_write_rate_far_above_history_trips(server_factory: ServerFactory) -> None:
    api = server_factory(BREAKERS).api
    runaway, steady = Agent(), Agent()
    # 40 records at once against no history (RATE_MIN 30): accepted, then tripped.
    body = api.batch([_claim(runaway, f"drugs/{unique()}") for _ in range(40)])
    assert body["created"] == 40
    refused = api.post("/v1/assert", _claim(runaway, f"drugs/{unique()}"))
    assert refused.status == 429 and refused.error["code"] == "breaker_open"
    assert "rate_jump" in refused.error["message"]
    assert _labelled(api, "stemedb_breaker_trips_total", reason="rate_jump") == 1.0
    # Below the floor nothing trips.
    assert api.batch([_claim(steady, f"drugs/{unique()}") for _ in range(20)])["created"] == 20
    assert api.post("/v1/assert", _claim(steady, f"drugs/{unique()}")).status == 201


def test_mostly_rejected_batches_trip_per_record(server_factory: ServerFactory) -> None:
    api = server_factory(BREAKERS).api
    sloppy = Agent()
    good = [_claim(sloppy, f"drugs/{unique()}") for _ in range(2)]
    body = api.batch([*good, *(_bad_vote(sloppy) | {"kind": "vote"} for _ in range(4))])
    assert body["created"] == 2 and body["rejected"] == 4  # 4 of 6 refused: >= 0.5
    refused = api.post("/v1/assert", _claim(sloppy, f"drugs/{unique()}"))
    assert refused.status == 429 and "4 of its 6 records" in refused.error["message"]


def test_breakers_are_off_by_default(server_factory: ServerFactory) -> None:
    api = server_factory({"STEMEDB_RATE_LIMIT_WRITE": "0"}).api
    agent = Agent()
    for _ in range(25):
        assert api.post("/v1/vote", _bad_vote(agent)).status == 404
    assert api.post("/v1/assert", _claim(agent, f"drugs/{unique()}")).status == 201
    assert api.get_ok("/v1/admin/breakers") == {
        "enabled": False,
        "breakers": [],
        "count": 0,
        "open": 0,
    }


def test_admin_keys_are_never_tripped(server_factory: ServerFactory) -> None:
    root = "0123456789abcdef0123456789abcdef-breakers"
    api = server_factory(
        {**BREAKERS, "STEMEDB_AUTH_ENABLED": "true", "STEMEDB_ROOT_API_KEY": root}
    ).api
    admin = {"X-API-Key": root}
    writer = {
        "X-API-Key": api.ok(
            "POST", "/v1/admin/keys", {"role": "writer"}, expect=201, headers=admin
        )["api_key"]
    }
    agent = Agent()
    for _ in range(5):
        assert api.post("/v1/vote", _bad_vote(agent), headers=admin).status == 404
    assert api.post("/v1/assert", _claim(agent, f"drugs/{unique()}"), headers=admin).status == 201
    # The same agent through a writer key: its own breaker (per key), tripped after 5.
    for _ in range(5):
        assert api.post("/v1/vote", _bad_vote(agent), headers=writer).status == 404
    refused = api.post("/v1/assert", _claim(agent, f"drugs/{unique()}"), headers=writer)
    assert refused.status == 429
    # ...while the admin key still writes as that agent.
    assert api.post("/v1/assert", _claim(agent, f"drugs/{unique()}"), headers=admin).status == 201
    [entry] = api.get_ok("/v1/admin/breakers", headers=admin)["breakers"]
    assert entry["api_key"] is not None and entry["agent_id"] == agent.id


def test_the_alert_fires_on_a_trip(tmp_path: Path) -> None:
    """promtool (Debian's `prometheus` package, in .ci/run) is required, not skipped."""
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is required: apt-get install prometheus"
    doc = yaml.safe_load(ALERTS.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc))
    labels = 'job="stemedb", instance="a", reason="rejections"'
    spec = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"stemedb_breaker_trips_total{{{labels}}}", "values": "0 0 0 1 1"},
                    {
                        "series": 'stemedb_quarantine_held{job="stemedb", instance="a"}',
                        "values": "5000x40",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": "StemeDBBreakerTripped", "exp_alerts": []},
                    {
                        "eval_time": "4m",
                        "alertname": "StemeDBBreakerTripped",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "job": "stemedb",
                                    "instance": "a",
                                    "reason": "rejections",
                                    "severity": "warning",
                                }
                            }
                        ],
                    },
                    {"eval_time": "20m", "alertname": "StemeDBQuarantineBacklog", "exp_alerts": []},
                    {
                        "eval_time": "35m",
                        "alertname": "StemeDBQuarantineBacklog",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "job": "stemedb",
                                    "instance": "a",
                                    "severity": "warning",
                                }
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
