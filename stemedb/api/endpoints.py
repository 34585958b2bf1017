"""Wire services to routes: the one place that knows every endpoint."""

from __future__ import annotations

from stemedb.api.console import console_routes
from stemedb.api.resources import admin_agents, admin_keys, admin_ops, agents, ops, reads, writes
from stemedb.api.resources import constraints as constraint_routes
from stemedb.api.resources import sources as source_routes
from stemedb.api.resources.admin_breakers import routes as breaker_routes
from stemedb.api.resources.admin_quarantine import routes as quarantine_routes
from stemedb.api.routing import Route
from stemedb.config import Settings
from stemedb.metrics import Metrics
from stemedb.security.breakers import Breakers
from stemedb.security.keys import KeyStore
from stemedb.security.new_agents import NewAgentLimit
from stemedb.service.audit import AuditLog
from stemedb.service.browse import BrowseService
from stemedb.service.constraints import ConstraintService
from stemedb.service.operations import Operations
from stemedb.service.quarantine import QuarantineService
from stemedb.service.queries import QueryService
from stemedb.service.sources import SourceRegistry
from stemedb.service.tier_policy import AgentRegistry
from stemedb.service.writes import WriteService
from stemedb.store import Store


def build_routes(settings: Settings, store: Store, metrics: Metrics) -> list[Route]:
    browse = BrowseService(store)

    def on_commit(seconds: float, records: int) -> None:
        metrics.journal_commit_seconds.observe(seconds)
        metrics.journal_batch_size.observe(records)
        browse.notify_commit()

    operations = Operations(store, settings)
    operations.observe_commits(on_commit)
    audit = AuditLog(
        store, enabled=settings.query_audit, retention_days=settings.audit_retention_days
    )
    write_service = WriteService(
        store,
        settings,
        on_rejected=lambda reason: metrics.assertions_rejected_total.labels(reason).inc(),
        on_ingested=metrics.assertions_ingested_total.inc,
    )

    quarantine = QuarantineService(store, settings, metrics)  # records the policy in force
    quarantine.wire(write_service)
    NewAgentLimit.for_store(store, settings, metrics).wire(write_service)  # issue 19 item 4

    def on_query(endpoint: str, lens: str, seconds: float) -> None:
        metrics.queries_total.labels(endpoint, lens).inc()
        metrics.query_latency_seconds.labels(endpoint, lens).observe(seconds)

    query_service = QueryService(store, audit, on_query=on_query)
    query_service.on_capped = metrics.tier_capped_total.inc  # tier caps (tier_policy.py)
    metrics.watch_reads(browse, audit)  # long-poll and export lanes, audit bounds
    return [
        *writes.routes(write_service),
        *reads.routes(query_service, browse, audit),
        *ops.routes(operations),
        *admin_ops.routes(operations, metrics),
        *admin_keys.routes(KeyStore.for_store(store)),
        *admin_agents.routes(write_service, AgentRegistry(store)),
        *source_routes.routes(write_service, SourceRegistry(store)),  # issue 17
        *constraint_routes.routes(ConstraintService(store)),  # issue 17
        *agents.routes(store),  # public agent profiles (stemedb/service/agents.py)
        *console_routes(store),  # /console and /v1/triage (issue 16)
        *breaker_routes(Breakers.for_store(store, settings, metrics)),  # issue 19
        *quarantine_routes(write_service, quarantine),  # issue 19
    ]
