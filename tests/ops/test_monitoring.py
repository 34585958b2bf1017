"""Issue #6 §6: the shipped Prometheus rules and Grafana dashboard are valid, their
alerts fire when they should (promtool unit tests), and every StemeDB metric they
use is really exported by a live server, whose /metrics passes `promtool check metrics`.

promtool comes from Debian's `prometheus` package (apt-get install prometheus).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ops_support import signed_assertions
from serverkit import StartServer, http_json

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "packaging" / "monitoring" / "alerts.yml"
DASHBOARD = ROOT / "packaging" / "monitoring" / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)"
)
# operations.md mandates this gauge name; promtool's lint prefers _total for counters only.
ALLOWED_LINT = {"stemedb_assertions_total": 'non-counter metrics should not have "_total" suffix'}
METRIC = re.compile(r"\b(stemedb_[a-z0-9_]+)")


def _rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


@needs_promtool
def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_documented_and_its_runbook_exists() -> None:
    names = {str(rule["alert"]) for rule in _rules()}
    assert {
        "StemeDBDown",
        "StemeDBHigh5xxRatio",
        "StemeDBSlowCommits",
        "StemeDBDiskFilling",
        "StemeDBDiskAlmostFull",
        "StemeDBArchiveLagging",
        "StemeDBNoRecentBackup",
        "StemeDBCertificateExpiringSoon",
        "StemeDBWriteQueueBacklog",
    } <= names
    for rule in _rules():
        notes = rule["annotations"]
        assert isinstance(notes, dict)
        assert notes["summary"] and notes["description"], rule["alert"]
        url = str(notes["runbook_url"])
        assert url.startswith("docs/operations/runbooks/"), url
        assert (ROOT / url).is_file(), f"{rule['alert']}: {url} does not exist"
    exprs = {str(r["alert"]): " ".join(str(r["expr"]).split()) for r in _rules()}
    assert exprs["StemeDBSlowCommits"].startswith(
        "histogram_quantile(0.99, rate(stemedb_journal_commit_seconds_bucket"
    )
    assert "time() - stemedb_last_backup_timestamp_seconds" in exprs["StemeDBNoRecentBackup"]
    assert "> 26 * 3600" in exprs["StemeDBNoRecentBackup"]
    assert "< 14 * 86400" in exprs["StemeDBCertificateExpiringSoon"]


@needs_promtool
def test_alerts_fire_when_they_should(tmp_path: Path) -> None:
    """promtool's rule unit tests: synthetic series in, expected alerts out."""
    # promtool compares annotations too; the expressions, `for` and labels are what is
    # tested here (the annotations are checked above), so drop them from the copy.
    doc = yaml.safe_load(ALERTS.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc))
    labels = {"job": "stemedb", "instance": "a"}

    def series(name: str, values: str, **extra: str) -> dict[str, str]:
        selector = ", ".join(f'{k}="{v}"' for k, v in {**labels, **extra}.items())
        return {"series": f"{name}{{{selector}}}", "values": values}

    def fires(at: str, alert: str, **extra: str) -> dict[str, object]:
        want = {**labels, **extra}
        return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": want}]}

    def quiet(at: str, alert: str) -> dict[str, object]:
        return {"eval_time": at, "alertname": alert, "exp_alerts": []}

    sawtooth = " ".join(["0 10 20 30 40"] * 6)  # archived every 5 minutes
    requests = "stemedb_http_requests_total"
    commit = "stemedb_journal_commit_seconds_bucket"
    broken = {
        "interval": "1m",
        "input_series": [
            series("up", "1 1 0 0 0 0"),
            series(commit, "0+10x40", le="0.05"),  # 90 % of commits slower than 50 ms
            series(commit, "0+100x40", le="0.1"),
            series(commit, "0+100x40", le="+Inf"),
            # the head grows by 10 a minute; the archive stopped at 0, so the lag grows too
            series("stemedb_journal_seq", "0+10x40"),
            series("stemedb_archive_lag_frames", "0+10x40"),
            series(requests, "0+100x40", status="200", route="/v1/query", method="POST"),
            series(requests, "0+20x40", status="507", route="/v1/assert", method="POST"),
        ],
        "alert_rule_test": [
            quiet("2m", "StemeDBDown"),
            fires("5m", "StemeDBDown", severity="critical"),
            quiet("8m", "StemeDBSlowCommits"),
            fires("20m", "StemeDBSlowCommits", severity="warning"),
            quiet("14m", "StemeDBArchiveLagging"),
            fires("25m", "StemeDBArchiveLagging", severity="warning"),
            {
                **fires("10m", "StemeDBHigh5xxRatio"),
                "exp_alerts": [{"exp_labels": {"severity": "critical", "instance": "a"}}],
            },
        ],
    }
    healthy = {
        "interval": "1m",
        "input_series": [
            series("stemedb_journal_seq", "0+10x40"),
            series("stemedb_archive_lag_frames", sawtooth),
            series("stemedb_last_backup_timestamp_seconds", "0+60x40"),
        ],
        "alert_rule_test": [
            quiet("29m", "StemeDBArchiveLagging"),
            quiet("29m", "StemeDBNoRecentBackup"),
        ],
    }
    # A day and more of history: a coarser clock keeps promtool fast. One backup at
    # t=0 and none since (promtool's clock starts at the Unix epoch).
    daily = {
        "interval": "5m",
        "input_series": [series("stemedb_last_backup_timestamp_seconds", "0x340")],
        "alert_rule_test": [
            quiet("25h", "StemeDBNoRecentBackup"),
            fires("27h", "StemeDBNoRecentBackup", severity="warning"),
        ],
    }
    suites = {"tests.yml": ("1m", [broken, healthy]), "daily.yml": ("5m", [daily])}
    for name, (interval, tests) in suites.items():
        spec = {"rule_files": ["alerts.yml"], "evaluation_interval": interval, "tests": tests}
        (tmp_path / name).write_text(yaml.safe_dump(spec))
        result = subprocess.run(
            [PROMTOOL, "test", "rules", name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_valid_grafana_json() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and dash["schemaVersion"] >= 30
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = " | ".join(p["title"] for p in panels).lower()
    for wanted in (
        "request rate",
        "request latency",
        "commit latency",
        "batch size",
        "queue depth",
        "assertions",
        "database size",
        "archive lag",
        "backup age",
    ):
        assert wanted in titles, wanted
    for panel in panels:
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24


def _exported_names(text: str) -> set[str]:
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            base = name.removesuffix("_total")
            names |= {name, base}
            if kind == "counter":
                names.add(base + "_total")
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@needs_promtool
def test_live_metrics_pass_promtool_and_cover_rules_and_dashboard(
    tmp_path: Path, run_server_process: StartServer
) -> None:
    env = {}
    if shutil.which("openssl"):
        cert = tmp_path / "cert.pem"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                str(tmp_path / "key.pem"),
                "-out",
                str(cert),
                "-days",
                "30",
                "-subj",
                "/CN=stemedb.test",
            ],
            check=True,
            capture_output=True,
        )
        env = {"STEMEDB_TLS_CERT": str(cert)}
    server = run_server_process(env)
    status, _, body = http_json("POST", server.url + "/v1/assert/batch", signed_assertions(5, "m"))
    assert status == 200, body
    http_json("POST", server.url + "/v1/query", {"concept_path": "test/health", "lens": "recency"})
    http_json("GET", server.url + "/v1/health")
    status, _, text = http_json("GET", server.url + "/metrics")
    assert status == 200
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    problems = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
    unexpected = [
        ln
        for ln in problems
        if not any(ln.startswith(name) and why in ln for name, why in ALLOWED_LINT.items())
    ]
    assert result.returncode in (0, 3) and not unexpected, problems  # 3 = lint findings only

    exported = _exported_names(text)
    used = set(METRIC.findall(ALERTS.read_text())) | set(METRIC.findall(DASHBOARD.read_text()))
    if "STEMEDB_TLS_CERT" not in env:
        used.discard("stemedb_tls_cert_expiry_seconds")
    missing = sorted(used - exported)
    assert not missing, f"rules/dashboard use metrics the server does not export: {missing}"
