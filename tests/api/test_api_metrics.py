"""Metrics: every name of operations.md, private registries, store-backed gauges, /metrics."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from serverkit import REQUIRED_METRICS

from stemedb.metrics import CONTENT_TYPE, Metrics, cert_not_after

Client = Callable[..., falcon.testing.TestClient]

REQUIRED = REQUIRED_METRICS


def _exercised() -> Metrics:
    m = Metrics("9.9.9")
    m.observe_request("GET", "/v1/health", 200, 0.001)
    m.assertions_ingested_total.inc()
    m.assertions_rejected_total.labels("invalid_signature").inc()
    m.queries_total.labels("query", "recency").inc()
    m.query_latency_seconds.labels("query", "recency").observe(0.01)
    m.observe_commit(0.0007, 3)
    m.rate_limited_total.labels("/v1/assert").inc()
    return m


def test_every_required_metric_is_exported() -> None:
    text = _exercised().render().decode()
    for name in REQUIRED:
        assert f"\n{name}" in text or text.startswith(name) or f"# TYPE {name}" in text, name
    assert "stemedb_build_info{python=" in text and 'version="9.9.9"' in text
    assert "_created" not in text
    assert "stemedb_tls_cert_expiry_seconds" not in text  # only with a certificate


def test_commit_and_batch_buckets() -> None:
    m = _exercised()
    value = m.registry.get_sample_value
    assert value("stemedb_journal_commit_seconds_bucket", {"le": "0.0005"}) == 0
    assert value("stemedb_journal_commit_seconds_bucket", {"le": "0.001"}) == 1
    assert value("stemedb_journal_batch_size_bucket", {"le": "2.0"}) == 0
    assert value("stemedb_journal_batch_size_bucket", {"le": "4.0"}) == 1
    assert value("stemedb_journal_batch_size_bucket", {"le": "1024.0"}) == 1


def test_registries_are_independent() -> None:
    a, b = Metrics("1"), Metrics("1")
    a.observe_request("GET", "/x", 200, 0.1)
    labels = {"method": "GET", "route": "/x", "status": "200"}
    assert a.registry.get_sample_value("stemedb_http_requests_total", labels) == 1
    assert b.registry.get_sample_value("stemedb_http_requests_total", labels) is None


def test_store_gauges_read_stats_once_per_scrape() -> None:
    calls: list[int] = []
    stats: dict[str, Any] = {
        "assertion_count": 10234,
        "journal_seq": 10240,
        "db_size_bytes": 4096,
        "queue_depth": 3,
        "chain_head": "ab" * 32,
    }

    def stats_fn() -> dict[str, Any]:
        calls.append(1)
        return stats

    m = Metrics("1", stats_ttl_s=60)
    m.bind_store(stats_fn)
    value = m.registry.get_sample_value
    m.render()
    assert len(calls) == 1
    assert value("stemedb_assertions_total") == 10234
    assert value("stemedb_journal_seq") == 10240
    assert value("stemedb_write_queue_depth") == 3
    assert value("stemedb_archive_lag_frames") == 0  # unknown key
    fresh = Metrics("1", stats_ttl_s=0)
    fresh.bind_store(stats_fn)
    stats["journal_seq"] = 10241
    assert fresh.registry.get_sample_value("stemedb_journal_seq") == 10241


def test_failing_store_keeps_last_values() -> None:
    state = {"fail": False}

    def stats_fn() -> dict[str, Any]:
        if state["fail"]:
            raise RuntimeError("store closed")
        return {"journal_seq": 5}

    m = Metrics("1", stats_ttl_s=0)
    m.bind_store(stats_fn)
    assert m.registry.get_sample_value("stemedb_journal_seq") == 5
    state["fail"] = True
    assert m.registry.get_sample_value("stemedb_journal_seq") == 5


def test_uptime_grows() -> None:
    m = Metrics("1")
    first = m.registry.get_sample_value("stemedb_uptime_seconds")
    time.sleep(0.02)
    assert m.registry.get_sample_value("stemedb_uptime_seconds") > first  # type: ignore[operator]


def _make_cert(tmp_path: Path, days: int) -> Path:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to generate a test certificate")
    cert = tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=stemedb.test",
            "-days",
            str(days),
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert


def test_tls_cert_expiry_from_pem(tmp_path: Path) -> None:
    cert = _make_cert(tmp_path, 30)
    assert abs(cert_not_after(cert) - (time.time() + 30 * 86400)) < 120
    m = Metrics("1")
    m.watch_tls_cert(cert)
    left = m.registry.get_sample_value("stemedb_tls_cert_expiry_seconds")
    assert left is not None and abs(left - 30 * 86400) < 120


def test_tls_cert_expiry_is_nan_when_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate")
    m = Metrics("1")
    m.watch_tls_cert(bad)
    value = m.registry.get_sample_value("stemedb_tls_cert_expiry_seconds")
    assert value is not None and value != value  # NaN


def test_metrics_endpoint(make_client: Client) -> None:
    client = make_client([])
    client.simulate_get("/nope")
    result = client.simulate_get("/metrics")
    assert result.status_code == 200
    assert result.headers["Content-Type"] == CONTENT_TYPE
    assert (
        'stemedb_http_requests_total{method="GET",route="unmatched",status="404"} 1.0'
        in result.text
    )


def test_metrics_endpoint_disabled_is_404(make_client: Client) -> None:
    result = make_client([], meter_enabled=False).simulate_get("/metrics")
    assert result.status_code == 404 and result.json["error"]["code"] == "not_found"
