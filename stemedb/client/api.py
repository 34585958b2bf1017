"""`Client`: one typed method per endpoint of the HTTP API (docs/api.md).

Naming: reads are nouns (`assertion`, `epochs`, `epoch`), writes are verbs
(`assert_`, `vote`, `supersede`, `alias`, `outcome`, `create_epoch`); the
epoch write is `create_epoch` because `epoch(id)` is the read of one epoch.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

from stemedb.client import moderation, sources
from stemedb.client.base import BaseClient, drop_none, dumps, is_signed
from stemedb.client.errors import ApiError, ConnectionFailed
from stemedb.client.types import (
    AgentProfile,
    AgentsPage,
    AgentSummary,
    BatchResult,
    Feed,
    Frame,
    Health,
    Normalized,
    QueryResult,
    Ready,
    Skeptic,
    WriteResult,
)

FEED_MAX_WAIT = 30.0


def _kinds(kinds: str | Iterable[str] | None) -> str | None:
    if kinds is None or isinstance(kinds, str):
        return kinds
    return ",".join(kinds)


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


class Client(BaseClient):
    """A StemeDB API client. Thread-safe: each thread gets its own keep-alive connection.

    >>> client = Client("http://127.0.0.1:18180", key_file="~/.config/stemedb/key")
    >>> client.assert_("drugs/semaglutide", "gastroparesis_risk", "warning", 0.9)
    {'hash': '...', 'seq': 42, 'status': 'created'}
    """

    # ---- writes ----------------------------------------------------------------

    def assert_(
        self,
        subject: str,
        predicate: str,
        obj: Any,
        confidence: float,
        *,
        source: str | None = None,
        source_class: str | None = None,
        lifecycle: str | None = None,
        parent_hash: str | None = None,
        epoch: str | None = None,
        timestamp: int | None = None,
        **fields: Any,
    ) -> WriteResult:
        """Assert one claim, signed with the client's key (the record carries a
        timestamp, so a retry resends identical bytes and answers `exists`).
        `obj` is a bare str/number/bool or a tagged `{"type": ..., "value": ...}`."""
        record = {
            "subject": subject,
            "predicate": predicate,
            "object": obj,
            "confidence": confidence,
            "source": source,
            "source_class": source_class,
            "lifecycle": lifecycle,
            "parent_hash": parent_hash,
            "epoch": epoch,
            "timestamp": timestamp,
            **fields,
        }
        return self._write("assertion", "/v1/assert", record)

    def assert_record(self, record: Mapping[str, Any]) -> WriteResult:
        """POST an assertion record exactly as given (signed or not; see `sign`)."""
        return cast(
            WriteResult, self._post("/v1/assert", dict(record), idempotent=is_signed(record))
        )

    def write(self, kind: str, record: Mapping[str, Any]) -> WriteResult:
        """Any record kind through its endpoint, signed when the client has a key."""
        paths = {
            "assertion": "/v1/assert",
            "vote": "/v1/vote",
            "epoch": "/v1/epoch",
            "supersession": "/v1/supersede",
            "alias": "/v1/aliases",
            "outcome": "/v1/outcome",
        }
        if kind not in paths:
            raise ValueError(f"unknown record kind {kind!r}; expected one of {', '.join(paths)}")
        return self._write(kind, paths[kind], record)

    def vote(
        self, assertion_hash: str, weight: float, *, timestamp: int | None = None
    ) -> WriteResult:
        """Vote in [-1, 1]; an agent's later vote on the same assertion replaces its earlier one."""
        fields = {"assertion_hash": assertion_hash, "weight": weight, "timestamp": timestamp}
        return self._write("vote", "/v1/vote", fields)

    def create_epoch(
        self,
        name: str,
        *,
        description: str | None = None,
        supersedes: Sequence[str] = (),
        timestamp: int | None = None,
    ) -> WriteResult:
        """Create an epoch; its `hash` is the epoch id used by assertions' `epoch`."""
        fields = {
            "name": name,
            "description": description,
            "supersedes": list(supersedes),
            "timestamp": timestamp,
        }
        return self._write("epoch", "/v1/epoch", fields)

    def supersede(
        self,
        target_hash: str,
        reason: str,
        *,
        replacement_hash: str | None = None,
        type: str | None = None,
        timestamp: int | None = None,
    ) -> WriteResult:
        """Hide `target_hash` from lenses (`type` Invalidate or Correct); nothing is deleted."""
        fields = {
            "target_hash": target_hash,
            "replacement_hash": replacement_hash,
            "reason": reason,
            "type": type,
            "timestamp": timestamp,
        }
        return self._write("supersession", "/v1/supersede", fields)

    def alias(self, alias: str, canonical: str, *, timestamp: int | None = None) -> WriteResult:
        """Map `alias` to `canonical`; queries on the alias read the canonical path."""
        fields = {"alias": alias, "canonical": canonical, "timestamp": timestamp}
        return self._write("alias", "/v1/aliases", fields)

    def outcome(
        self, agent_id: str, assertion_hash: str, accurate: bool, *, timestamp: int | None = None
    ) -> WriteResult:
        """Record whether `agent_id` was right (admin role); moves its TrustRank."""
        fields = {
            "agent_id": agent_id,
            "assertion_hash": assertion_hash,
            "accurate": accurate,
            "timestamp": timestamp,
        }
        return self._write("outcome", "/v1/outcome", fields)

    def batch(self, records: Iterable[Mapping[str, Any]], *, atomic: bool = False) -> BatchResult:
        """Many records (any kinds, `"kind"` in each) as one JSON array, sent as given.

        Retried only when every record is signed. A rejected record does not
        raise: read `results[i]["status"]`. With `atomic=True` any rejection
        raises ApiError 400 (its `body` holds the per-record results) and
        nothing is written.
        """
        items = [dict(record) for record in records]
        idempotent = all(is_signed(record) for record in items)
        body = self._post(
            "/v1/assert/batch",
            items,
            params={"atomic": True} if atomic else None,
            idempotent=idempotent,
            ok=(200,),
        )
        return cast(BatchResult, body)

    def batch_ndjson(
        self, records: Iterable[Mapping[str, Any] | str | bytes], *, atomic: bool = False
    ) -> BatchResult:
        """Stream records as NDJSON (chunked upload; dicts, JSON strings or bytes lines).

        Memory stays flat on the client however long the iterable; the body
        is sent once, so this call is never retried.
        """

        def lines() -> Iterator[bytes]:
            for record in records:
                if isinstance(record, bytes):
                    yield record.rstrip(b"\n") + b"\n"
                elif isinstance(record, str):
                    yield record.rstrip("\n").encode() + b"\n"
                else:
                    yield dumps(record) + b"\n"

        response = self.transport.request(
            "POST",
            "/v1/assert/batch",
            params={"atomic": True} if atomic else None,
            body=lines(),
            content_type="application/x-ndjson",
            idempotent=False,
            ok=(200,),
        )
        return cast(BatchResult, response.json())

    def normalize(self, record: Mapping[str, Any], kind: str = "assertion") -> Normalized:
        """The server's normalised form of an unsigned record, its digest, the message to sign."""
        body = self._post(
            "/v1/normalize", dict(record), params={"kind": kind}, idempotent=True, ok=(200,)
        )
        return cast(Normalized, body)

    # ---- reads -----------------------------------------------------------------

    def assertion(self, hash: str) -> dict[str, Any]:
        """One assertion with its server fields (seq, tier, agent_id, superseded, ...)."""
        return cast(dict[str, Any], self._get(f"/v1/assertions/{_quote(hash)}"))

    def query(self, subject: str | None = None, **params: Any) -> QueryResult:
        """POST /v1/query: list (no `lens`) or resolve through a lens. Parameters as in
        docs/api.md (predicate, lens, inner, prefix, lifecycle, epoch, source_class,
        max_tier, agent_id, as_of, known_at, decay, include_superseded, limit, cursor)."""
        body = drop_none({"subject": subject, **params})
        return cast(QueryResult, self._post("/v1/query", body, idempotent=True, ok=(200,)))

    def query_all(self, subject: str | None = None, **params: Any) -> Iterator[dict[str, Any]]:
        """Every listed assertion (or lens group) of a query, following `next_cursor`."""
        cursor = params.pop("cursor", None)
        while True:
            page = self.query(subject, cursor=cursor, **params)
            rows: list[Any] = list(page.get("assertions") or page.get("results") or [])
            yield from rows
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def skeptic(self, subject: str, predicate: str, **params: Any) -> Skeptic:
        """Conflict analysis: status (Unanimous/Agreed/Contested), conflict score, claims."""
        query = {"subject": subject, "predicate": predicate, **params}
        return cast(Skeptic, self._get("/v1/skeptic", query))

    def layered(self, subject: str, predicate: str, **params: Any) -> dict[str, Any]:
        """Per-tier winners and the cross-tier conflict."""
        query = {"subject": subject, "predicate": predicate, **params}
        return cast(dict[str, Any], self._get("/v1/layered", query))

    def trace(self, hash: str, *, depth: int | None = None) -> dict[str, Any]:
        """Lineage: ancestors through parent_hash, children, supersessions, votes."""
        return cast(dict[str, Any], self._get(f"/v1/trace/{_quote(hash)}", {"depth": depth}))

    def concepts(self, prefix: str | None = None) -> dict[str, Any]:
        """Child segments under `prefix` with assertion counts."""
        return cast(dict[str, Any], self._get("/v1/concepts", {"prefix": prefix}))

    def concept_search(
        self, q: str, *, prefix: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """Claims whose value text contains `q` (3+ characters), in any subject."""
        params = {"q": q, "prefix": prefix, "limit": limit}
        return cast(dict[str, Any], self._get("/v1/concepts/search", params))

    def aliases_of(self, path: str) -> dict[str, Any]:
        """The canonical path of `path` and every alias of it."""
        return cast(dict[str, Any], self._get(f"/v1/aliases/{_quote(path)}"))

    def epochs(self) -> list[dict[str, Any]]:
        """Every epoch with its `superseded` flag."""
        return cast(list[dict[str, Any]], self._get("/v1/epochs")["epochs"])

    def epoch(self, id: str) -> dict[str, Any]:
        """One epoch by id (the hash `create_epoch` answered)."""
        return cast(dict[str, Any], self._get(f"/v1/epochs/{_quote(id)}"))

    def feed(
        self,
        after: int = 0,
        limit: int = 100,
        kinds: str | Iterable[str] | None = None,
        wait: float = 0,
    ) -> Feed:
        """Journal frames after seq `after`; `wait` (<= 30 s) long-polls for new ones."""
        params = {"after": after, "limit": limit, "kinds": _kinds(kinds), "wait": wait or None}
        return cast(Feed, self._get("/v1/feed", params, timeout=self.timeout + wait))

    def follow(
        self,
        after: int = 0,
        *,
        kinds: str | Iterable[str] | None = None,
        limit: int = 1000,
        wait: float = 25.0,
        max_backoff: float = 30.0,
    ) -> Iterator[Frame]:
        """Every frame after `after`, forever: long-polls, and rides out server
        restarts by retrying with backoff from the last seq it yielded (gap-free)."""
        failures = 0
        wait = min(wait, FEED_MAX_WAIT)
        while True:
            try:
                page = self.feed(after, limit, kinds, wait)
            except ApiError as exc:
                if not (isinstance(exc, ConnectionFailed) or exc.status in (502, 503, 504)):
                    raise
                failures += 1
                time.sleep(min(max_backoff, 0.5 * 2 ** min(failures, 10)))
                continue
            failures = 0
            yield from page["frames"]
            after = max(after, page["next_after"])
            pause = cast(Mapping[str, Any], page).get("retry_after")  # the server's long-poll cap
            if not page["frames"] and pause:
                time.sleep(min(max_backoff, float(pause)))

    def export(
        self,
        format: str = "ndjson",
        kinds: str | Iterable[str] | None = None,
        after: int = 0,
    ) -> Iterator[str]:
        """Every matching record, streamed: one line per record (CSV: a header
        line first), in constant memory. NDJSON lines re-import with ids intact."""
        params = {"format": format, "kinds": _kinds(kinds), "after": after or None}
        for line in self.transport.stream_lines("/v1/export", params=params):
            yield line.decode("utf-8")

    def export_records(
        self, kinds: str | Iterable[str] | None = None, after: int = 0
    ) -> Iterator[dict[str, Any]]:
        """`export` in NDJSON, parsed."""
        for line in self.export("ndjson", kinds, after):
            if line:
                yield cast(dict[str, Any], json.loads(line))

    def agent(
        self,
        agent_id: str,
        *,
        as_of: int | None = None,
        known_at: int | None = None,
        history_limit: int | None = None,
    ) -> AgentProfile:
        """One agent's public profile: trust relaxed to now (or `as_of`), its outcome
        history, counts of claims, co-signatures and votes, first seen (404 if unknown)."""
        params = {"as_of": as_of, "known_at": known_at, "history_limit": history_limit}
        return cast(AgentProfile, self._get(f"/v1/agents/{_quote(agent_id)}", params))

    def agents(
        self,
        *,
        as_of: int | None = None,
        known_at: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AgentsPage:
        """One page of agents by trust, highest first (`next_cursor` for the next)."""
        params = {"as_of": as_of, "known_at": known_at, "limit": limit, "cursor": cursor}
        return cast(AgentsPage, self._get("/v1/agents", params))

    def agents_all(self, **params: Any) -> Iterator[AgentSummary]:
        """Every agent by trust, following `next_cursor`."""
        cursor = params.pop("cursor", None)
        while True:
            page = self.agents(cursor=cursor, **params)
            yield from page["agents"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def audit_queries(
        self,
        *,
        agent_id: str | None = None,
        from_: int | None = None,
        to: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The query audit trail (newest first), optionally for one agent or time range."""
        params = {"agent_id": agent_id, "from": from_, "to": to, "limit": limit}
        return cast(list[dict[str, Any]], self._get("/v1/audit/queries", params)["queries"])

    def audit_query(self, query_id: str) -> dict[str, Any]:
        """One audited query: parameters, winners, contributing assertions and weights."""
        return cast(dict[str, Any], self._get(f"/v1/audit/query/{_quote(query_id)}"))

    # ---- operations --------------------------------------------------------------

    def health(self) -> Health:
        """Health body; a degraded server answers 503 and this returns its body too."""
        response = self.transport.request(
            "GET", "/v1/health", idempotent=True, ok=(200, 503), timeout=self.timeout
        )
        return cast(Health, response.json())

    def ready(self) -> Ready:
        """`{"ready": bool, "reason": ...}`; not ready (503) is an answer, not an error."""
        response = self.transport.request(
            "GET", "/v1/ready", idempotent=True, ok=(200, 503), timeout=self.timeout
        )
        return cast(Ready, response.json())

    def metrics_text(self) -> str:
        """The Prometheus exposition text of `/metrics`."""
        return self.transport.request("GET", "/metrics", idempotent=True, ok=(200,)).text

    def admin_stats(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._get("/v1/admin/stats"))

    def admin_backup(self) -> dict[str, Any]:
        """Hot backup into the server's backup directory; returns its metadata."""
        return cast(dict[str, Any], self._post("/v1/admin/backup", None, idempotent=False))

    def admin_verify(self) -> dict[str, Any]:
        """Chain and projection checks; a failed verification is a report (`ok: false`)."""
        return cast(
            dict[str, Any],
            self._post("/v1/admin/verify", None, idempotent=True, ok=(200, 500)),
        )

    def admin_keys_list(self) -> list[dict[str, Any]]:
        """Every API key (id, name, role, scope, status), never a secret."""
        return cast(list[dict[str, Any]], self._get("/v1/admin/keys")["keys"])

    def admin_keys_create(
        self,
        role: str,
        *,
        name: str | None = None,
        scope: str | None = None,
        expires_in: str | None = None,
        expires_ms: int | None = None,
    ) -> dict[str, Any]:
        """A new API key: `{"key": {...}, "api_key": secret}`; the only time the
        secret is shown. Not retried: a repeat would mint a second key."""
        body = drop_none(
            {
                "role": role,
                "name": name,
                "scope": scope,
                "expires_in": expires_in,
                "expires_ms": expires_ms,
            }
        )
        return cast(dict[str, Any], self._post("/v1/admin/keys", body, idempotent=False))

    def admin_keys_revoke(self, key_id: str) -> dict[str, Any]:
        """Revoke a key by id (effective at once); answers `{"key": {...}}`."""
        response = self.transport.request(
            "DELETE", f"/v1/admin/keys/{_quote(key_id)}", idempotent=True, ok=(200,)
        )
        return cast(dict[str, Any], response.json())

    def admin_agents_register(
        self,
        agent_id: str,
        max_tier: str,
        *,
        name: str | None = None,
        note: str | None = None,
        timestamp: int | None = None,
    ) -> WriteResult:
        """Register `agent_id` for tiers up to `max_tier` (admin): a signed agent_tier record."""
        fields = {
            "agent_id": agent_id,
            "max_tier": max_tier,
            "name": name,
            "note": note,
            "timestamp": timestamp,
        }
        return self._write("agent_tier", "/v1/admin/agents", fields)

    def admin_agents_list(self) -> list[dict[str, Any]]:
        """Every registration in force: agent id, max tier, name, who registered it."""
        return cast(list[dict[str, Any]], self._get("/v1/admin/agents")["agents"])

    def admin_agent(self, agent_id: str) -> dict[str, Any]:
        """One agent's registration in force and its history (404 if never registered)."""
        return cast(dict[str, Any], self._get(f"/v1/admin/agents/{_quote(agent_id)}"))

    # ---- sources and constraints (issue 17; stemedb/client/sources.py) -----

    register_source = sources.register_source
    source = sources.source
    retract_source = sources.retract_source
    constraints = sources.constraints
    check_constraints = sources.check_constraints

    # ---- quarantine and circuit breakers (issue 19; stemedb/client/moderation.py) ----

    admin_quarantine = moderation.admin_quarantine
    admin_quarantine_release = moderation.admin_quarantine_release
    admin_quarantine_reject = moderation.admin_quarantine_reject
    admin_breakers = moderation.admin_breakers
    admin_breaker_reset = moderation.admin_breaker_reset


# Every route of the API and the Client method that calls it ("" = not for a client:
# the browsable docs). docs/gen_api.py prints it; a test checks it covers every route.
ENDPOINT_METHODS: dict[str, str] = {
    "POST /v1/assert": "assert_",
    "POST /v1/assertions": "assert_record",
    "POST /v1/assert/batch": "batch",
    "POST /v1/normalize": "normalize",
    "POST /v1/vote": "vote",
    "POST /v1/epoch": "create_epoch",
    "POST /v1/supersede": "supersede",
    "POST /v1/aliases": "alias",
    "POST /v1/outcome": "outcome",
    "GET /v1/assertions/{hash}": "assertion",
    "GET /v1/query": "query",
    "POST /v1/query": "query",
    "GET /v1/skeptic": "skeptic",
    "GET /v1/layered": "layered",
    "GET /v1/trace/{hash}": "trace",
    "GET /v1/concepts": "concepts",
    "GET /v1/concepts/search": "concept_search",
    "GET /v1/aliases/{path}": "aliases_of",
    "GET /v1/epochs": "epochs",
    "GET /v1/epochs/{id}": "epoch",
    "GET /v1/feed": "feed",
    "GET /v1/export": "export",
    "GET /v1/agents": "agents",
    "GET /v1/agents/{agent_id}": "agent",
    "GET /v1/audit/queries": "audit_queries",
    "GET /v1/audit/query/{query_id}": "audit_query",
    "GET /v1/health": "health",
    "GET /v1/ready": "ready",
    "GET /metrics": "metrics_text",
    "GET /v1/admin/stats": "admin_stats",
    "POST /v1/admin/backup": "admin_backup",
    "POST /v1/admin/verify": "admin_verify",
    "GET /v1/admin/keys": "admin_keys_list",
    "POST /v1/admin/keys": "admin_keys_create",
    "DELETE /v1/admin/keys/{key_id}": "admin_keys_revoke",
    "POST /v1/admin/agents": "admin_agents_register",
    "GET /v1/admin/agents": "admin_agents_list",
    "GET /v1/admin/agents/{agent_id}": "admin_agent",
    "GET /v1/admin/quarantine": "admin_quarantine",
    "POST /v1/admin/quarantine/{hash}/release": "admin_quarantine_release",
    "POST /v1/admin/quarantine/{hash}/reject": "admin_quarantine_reject",
    "GET /v1/admin/breakers": "admin_breakers",
    "POST /v1/admin/breakers/{agent_id}/reset": "admin_breaker_reset",
    "POST /v1/sources": "register_source",
    "GET /v1/sources/{source_id}": "source",
    "POST /v1/retractions": "retract_source",
    "GET /v1/constraints": "constraints",
    "POST /v1/constraints/check": "check_constraints",
    "GET /openapi.json": "",
    "GET /docs": "",
    "GET /docs/{name}": "",
    "GET /console": "",  # the web console (docs/console.md)
    "GET /console/{name}": "",
    "GET /v1/console/session": "",
    "GET /v1/triage": "",
}
