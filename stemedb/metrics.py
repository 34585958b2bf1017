"""Prometheus metrics of operations.md, on a registry owned by one `Metrics` object.

A private CollectorRegistry (not prometheus-client's global one) lets tests
build many apps in one process and keeps the exported set exactly ours.
Gauges that mirror store state read it at scrape time through `bind_store`.
"""

from __future__ import annotations

import functools
import logging
import platform
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stemedb.admission import Admission

log = logging.getLogger("stemedb.metrics")

# `*_created` series double the output and no dashboard or alert of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_BUCKETS = tuple(0.0005 * 2**i for i in range(14))  # 0.5 ms ... 4.1 s
BATCH_BUCKETS = tuple(float(2**i) for i in range(11))  # 1, 2, 4, ..., 1024

# gauge attribute -> key of Store.stats()
STORE_GAUGES = {
    "assertions_total": "assertion_count",
    "journal_seq": "journal_seq",
    "db_size_bytes": "db_size_bytes",
    "write_queue_depth": "queue_depth",
    "archive_lag_frames": "archive_lag_frames",
    "last_backup_timestamp_seconds": "last_backup_timestamp_seconds",
}


class Metrics:
    """Every StemeDB metric; attributes are the prometheus-client objects."""

    def __init__(self, version: str, *, stats_ttl_s: float = 1.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.started = time.monotonic()
        r = self.registry
        self.build_info = Gauge(
            "stemedb_build_info", "Build information; always 1", ["version", "python"], registry=r
        )
        self.build_info.labels(version=version, python=platform.python_version()).set(1)
        self.uptime_seconds = Gauge("stemedb_uptime_seconds", "Seconds since start", registry=r)
        self.uptime_seconds.set_function(lambda: time.monotonic() - self.started)
        self.http_requests_total = Counter(
            "stemedb_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_request_duration_seconds = Histogram(
            "stemedb_http_request_duration_seconds",
            "Time to produce a response (streamed bodies excluded)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.assertions_total = Gauge("stemedb_assertions_total", "Assertions stored", registry=r)
        self.assertions_ingested_total = Counter(
            "stemedb_assertions_ingested", "Assertions written since start", registry=r
        )
        self.assertions_rejected_total = Counter(
            "stemedb_assertions_rejected", "Records refused, by reason", ["reason"], registry=r
        )
        self.queries_total = Counter(
            "stemedb_queries", "Queries by endpoint and lens", ["endpoint", "lens"], registry=r
        )
        self.tier_capped_total = Counter(
            "stemedb_tier_capped_candidates",
            "Lens candidates ranked below the tier they declare: no signer is registered for "
            "it (docs/security.md, Authority cannot be self-declared)",
            registry=r,
        )
        self.query_latency_seconds = Histogram(
            "stemedb_query_latency_seconds",
            "Query evaluation time by endpoint and lens",
            ["endpoint", "lens"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.journal_seq = Gauge("stemedb_journal_seq", "Last journal sequence number", registry=r)
        self.journal_commit_seconds = Histogram(
            "stemedb_journal_commit_seconds",
            "One group commit including fsync",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.journal_batch_size = Histogram(
            "stemedb_journal_batch_size",
            "Records per group commit",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.write_queue_depth = Gauge(
            "stemedb_write_queue_depth", "Writes waiting for the writer", registry=r
        )
        self.requests_waiting = Gauge(
            "stemedb_requests_waiting",
            "Requests queued for an admission slot (STEMEDB_ACTIVE_REQUESTS)",
            registry=r,
        )
        self.db_size_bytes = Gauge("stemedb_db_size_bytes", "Database file size", registry=r)
        self.archive_lag_frames = Gauge(
            "stemedb_archive_lag_frames", "Journal frames not yet archived", registry=r
        )
        self.last_backup_timestamp_seconds = Gauge(
            "stemedb_last_backup_timestamp_seconds",
            "Unix time of the last verified backup (0 = none)",
            registry=r,
        )
        self.rate_limited_total = Counter(
            "stemedb_rate_limited", "Requests refused with 429", ["route"], registry=r
        )
        # Issue 19 defences (docs/security.md "Circuit breakers", "Quarantine").
        self.breaker_trips_total = Counter(
            "stemedb_breaker_trips",
            "Agents whose circuit breaker tripped, by reason (rejections, rate_jump)",
            ["reason"],
            registry=r,
        )
        self.breakers_open = Gauge(
            "stemedb_breakers_open", "Agents whose circuit breaker is open now", registry=r
        )
        self.quarantined_total = Counter(
            "stemedb_quarantined_records",
            "Records held in quarantine when written, by reason",
            ["reason"],
            registry=r,
        )
        self.quarantine_held = Gauge(
            "stemedb_quarantine_held", "Records held in quarantine, awaiting a decision", registry=r
        )
        self.readers = ReaderCollector()
        r.register(self.readers)
        self.replication = ReplicationCollector()  # its probe is set when Litestream runs
        r.register(self.replication)
        self.tls_cert_expiry_seconds: Gauge | None = None
        self._stats_fn: Callable[[], Mapping[str, Any]] | None = None
        self._stats: Mapping[str, Any] = {}
        self._stats_at = float("-inf")
        self._stats_ttl = stats_ttl_s
        self._lock = threading.Lock()
        # (method, route, status) -> the label children observe_request updates; as
        # bounded as the label sets themselves (route templates, not paths)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:  # labels() is a locked lookup: do it once per label set
            children = (
                self.http_requests_total.labels(method, route, str(status)),
                self.http_request_duration_seconds.labels(method, route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_commit(self, seconds: float, batch_size: int) -> None:
        """The store's writer calls this after each group commit (incl. fsync)."""
        self.journal_commit_seconds.observe(seconds)
        self.journal_batch_size.observe(batch_size)

    def watch_admission(self, admission: Admission) -> None:
        self.requests_waiting.set_function(lambda: admission.waiting)

    def watch_reads(self, browse: Any, audit: Any) -> None:
        """Export the long-poll and export lanes of `browse` and the audit's counters."""
        self.readers.browse = browse
        self.readers.audit = audit

    def bind_store(self, stats_fn: Callable[[], Mapping[str, Any]]) -> None:
        """Read store gauges from `stats_fn()` at scrape time (one call per scrape)."""
        self._stats_fn = stats_fn
        for attribute, key in STORE_GAUGES.items():
            gauge: Gauge = getattr(self, attribute)
            gauge.set_function(functools.partial(self._stat, key))

    def _stat(self, key: str) -> float:
        with self._lock:
            now = time.monotonic()
            if self._stats_fn is not None and now - self._stats_at >= self._stats_ttl:
                try:
                    self._stats = self._stats_fn()
                except Exception:  # a closed or busy store keeps the last values
                    log.debug("store stats unavailable for metrics", exc_info=True)
                self._stats_at = now
            value = self._stats.get(key)
        return float(value) if isinstance(value, int | float) else 0.0

    def watch_tls_cert(self, path: Path) -> None:
        """Export seconds until the certificate expires (re-read when the file changes)."""
        if self.tls_cert_expiry_seconds is None:
            self.tls_cert_expiry_seconds = Gauge(
                "stemedb_tls_cert_expiry_seconds",
                "Seconds until the configured TLS certificate expires",
                registry=self.registry,
            )
        cache: dict[str, float] = {}

        def seconds_left() -> float:
            try:
                mtime = path.stat().st_mtime
                if cache.get("mtime") != mtime:
                    cache["not_after"] = cert_not_after(path)
                    cache["mtime"] = mtime
            except (OSError, ValueError) as exc:
                log.warning("cannot read TLS certificate %s: %s", path, exc)
                return float("nan")
            return cache["not_after"] - time.time()

        self.tls_cert_expiry_seconds.set_function(seconds_left)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ReaderCollector(Collector):
    """Hostile-reader defences, read at scrape time (docs/security.md, "Hostile readers"):
    the long-poll and export lanes, connections closed for not reading, audit bounds."""

    def __init__(self) -> None:
        self.browse: Any = None
        self.audit: Any = None

    def describe(self) -> Iterator[Metric]:
        return iter(())  # described on collect: the values are read from live objects

    def collect(self) -> Iterator[Metric]:
        from stemedb.http import channel  # lazy: keeps waitress out of library use

        closed = CounterMetricFamily(
            "stemedb_slow_readers_closed",
            "Connections closed because the client stopped reading its answer, by reason",
            labels=["reason"],
        )
        for reason in ("send_timeout", "send_buffer_total"):
            closed.add_metric([reason], channel.send_timeouts.get(reason, 0))
        yield closed
        browse = self.browse
        if browse is not None:
            for lane, what in ((browse.long_polls, "long polls"), (browse.exports, "exports")):
                name = "stemedb_long_polls" if lane.name == "long_poll" else "stemedb_exports"
                yield GaugeMetricFamily(
                    f"{name}_active", f"{what} holding a worker thread now", value=lane.active
                )
                yield GaugeMetricFamily(
                    f"{name}_limit", f"most {what} that may hold a worker thread", value=lane.limit
                )
                yield CounterMetricFamily(
                    f"{name}_refused",
                    f"{what} over the limit (long polls answered at once, exports 429)",
                    value=lane.refused,
                )
        audit = self.audit
        if audit is not None:
            stats = audit.stats
            yield CounterMetricFamily(
                "stemedb_audit_rows", "Query audit rows queued for writing", value=stats.rows
            )
            yield CounterMetricFamily(
                "stemedb_audit_bytes", "Bytes of query audit rows queued", value=stats.bytes
            )
            yield CounterMetricFamily(
                "stemedb_audit_rows_truncated",
                "Audit rows with parameters or results cut to the row bounds",
                value=stats.truncated,
            )
            dropped = CounterMetricFamily(
                "stemedb_audit_rows_dropped",
                "Audit rows not written, by reason (client_budget, total_budget, unavailable)",
                labels=["reason"],
            )
            for reason in ("client_budget", "total_budget", "unavailable"):
                dropped.add_metric([reason], stats.dropped.get(reason, 0))
            yield dropped


class ReplicationCollector(Collector):
    """stemedb_replication_* (docs/operations/replication.md), read from the lag probe.

    Lag and errors are exported even with replication off (0): the shipped alert
    uses them and every server exports what the rules use. `_up` and
    `_replicated_seq` only exist while Litestream is configured.
    """

    def __init__(self) -> None:
        self.probe: Any = None  # a stemedb.replication.probe.LagProbe

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        probe = self.probe
        yield GaugeMetricFamily(
            "stemedb_replication_lag_seconds",
            "Age of the oldest journal head not yet confirmed replicated (0 = caught up)",
            value=probe.lag_seconds() if probe is not None else 0.0,
        )
        yield CounterMetricFamily(
            "stemedb_replication_errors",
            "Replication errors: failed Litestream syncs, ERROR lines it logged, its exits",
            value=probe.errors if probe is not None else 0,
        )
        if probe is None:
            return
        yield GaugeMetricFamily(
            "stemedb_replication_up",
            "1 while Litestream runs and answers on its metrics address",
            value=1.0 if probe.up else 0.0,
        )
        yield GaugeMetricFamily(
            "stemedb_replication_replicated_seq",
            "Newest journal seq confirmed shipped to the replica storage",
            value=probe.replicated_seq,
        )


def cert_not_after(path: Path) -> float:
    """Unix time at which the PEM certificate at `path` expires."""
    import ssl

    try:
        decoded = ssl._ssl._test_decode_cert(str(path))  # type: ignore[attr-defined]
        return float(ssl.cert_time_to_seconds(decoded["notAfter"]))
    except (AttributeError, ssl.SSLError, KeyError):
        pass  # no private decoder on this Python, or not PEM: ask openssl
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate", "-in", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    match = re.search(r"notAfter=(.+)", out.stdout)
    if out.returncode != 0 or not match:
        raise ValueError(f"not a PEM certificate: {out.stderr.strip() or path}")
    return float(ssl.cert_time_to_seconds(match.group(1).strip()))
