"""Read endpoints: query, skeptic, layered, lineage, catalogue, feed, export, audit."""

from __future__ import annotations

import falcon

from stemedb.api.errors import ErrorResponse
from stemedb.api.media import parse_query, validate
from stemedb.api.resources.common import agent_header, json_response, query_or_body
from stemedb.api.routing import Route
from stemedb.service.audit import AuditLog, attributed
from stemedb.service.browse import BrowseService
from stemedb.service.models import (
    AliasesOut,
    AssertionOut,
    AuditEntryOut,
    AuditListOut,
    AuditListQuery,
    ConceptsOut,
    ConceptsQuery,
    EpochOut,
    EpochsOut,
    ExportQuery,
    FeedOut,
    FeedQuery,
    LayeredOut,
    PairQuery,
    QueryIn,
    QueryOut,
    SkepticOut,
    TraceOut,
    TraceQuery,
)
from stemedb.service.queries import QueryService

_ERR = {400: ErrorResponse, 404: ErrorResponse}


def audit_client(req: falcon.Request) -> str:
    """Whom a query's audit row is charged to (its budget): the API key that
    authenticated it, else the client address; never a self-declared header."""
    key = getattr(req.context, "api_key", None)
    if key is not None:
        return f"key:{key.id}"
    address = getattr(req.context, "client_address", None) or req.remote_addr or "-"
    return f"ip:{address}"


def routes(queries: QueryService, browse: BrowseService, audit: AuditLog) -> list[Route]:
    def query(req: falcon.Request, resp: falcon.Response) -> None:
        q = validate(QueryIn, query_or_body(req))
        with attributed(audit_client(req)):
            json_response(resp, queries.query(q, agent_header(req)))

    def skeptic(req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, PairQuery)
        with attributed(audit_client(req)):
            json_response(resp, queries.skeptic(q, agent_header(req)))

    def layered(req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, PairQuery)
        with attributed(audit_client(req)):
            json_response(resp, queries.layered(q, agent_header(req)))

    def assertion(req: falcon.Request, resp: falcon.Response, hash: str) -> None:
        json_response(resp, browse.assertion(hash))

    def trace(req: falcon.Request, resp: falcon.Response, hash: str) -> None:
        q = parse_query(req, TraceQuery)
        json_response(resp, browse.trace(hash, q.depth))

    def concepts(req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, ConceptsQuery)
        json_response(resp, browse.concepts(q.prefix))

    def aliases(req: falcon.Request, resp: falcon.Response, path: str) -> None:
        json_response(resp, browse.aliases(path))

    def epochs(req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, browse.epochs())

    def epoch(req: falcon.Request, resp: falcon.Response, id: str) -> None:
        json_response(resp, browse.epoch(id))

    def feed(req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, FeedQuery)
        body = browse.feed(q.after, q.limit, q.kinds, q.wait)
        if "retry_after" in body:  # over the long-poll cap: answered without waiting
            resp.set_header("Retry-After", str(body["retry_after"]))
        json_response(resp, body)

    def export(req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, ExportQuery)
        resp.stream = browse.export(q.format, q.kinds, q.after)
        resp.content_type = (
            "text/csv; charset=utf-8" if q.format == "csv" else "application/x-ndjson"
        )

    def audit_list(req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, AuditListQuery)
        json_response(resp, {"queries": audit.list(q.agent_id, q.from_, q.to, q.limit)})

    def audit_one(req: falcon.Request, resp: falcon.Response, query_id: str) -> None:
        json_response(resp, audit.get(query_id))

    return [
        Route(
            "GET",
            "/v1/query",
            query,
            "Query assertions, optionally resolved through a lens",
            tag="reads",
            inline=True,
            query_model=QueryIn,
            responses={200: QueryOut, **_ERR},
        ),
        Route(
            "POST",
            "/v1/query",
            query,
            "Query (JSON body; same fields as GET)",
            tag="reads",
            inline=True,
            request_model=QueryIn,
            responses={200: QueryOut, **_ERR},
        ),
        Route(
            "GET",
            "/v1/skeptic",
            skeptic,
            "Conflict analysis of one (subject, predicate)",
            tag="reads",
            inline=True,
            query_model=PairQuery,
            responses={200: SkepticOut, **_ERR},
        ),
        Route(
            "GET",
            "/v1/layered",
            layered,
            "Per-tier view of one (subject, predicate)",
            tag="reads",
            inline=True,
            query_model=PairQuery,
            responses={200: LayeredOut, **_ERR},
        ),
        Route(
            "GET",
            "/v1/assertions/{hash}",
            assertion,
            "One assertion with its server fields",
            tag="reads",
            inline=True,
            responses={200: AssertionOut, **_ERR},
        ),
        Route(
            "GET",
            "/v1/trace/{hash}",
            trace,
            "Lineage of an assertion",
            tag="reads",
            inline=True,
            query_model=TraceQuery,
            responses={200: TraceOut, **_ERR},
        ),
        Route(
            "GET",
            "/v1/concepts",
            concepts,
            "Child segments under a prefix with counts",
            tag="reads",
            query_model=ConceptsQuery,
            responses={200: ConceptsOut, **_ERR},
        ),
        Route(
            "GET",
            "/v1/aliases/{path:path}",
            aliases,
            "Canonical path and known aliases",
            tag="reads",
            responses={200: AliasesOut, **_ERR},
        ),
        Route(
            "GET",
            "/v1/epochs",
            epochs,
            "Every epoch with its superseded flag",
            tag="reads",
            responses={200: EpochsOut},
        ),
        Route(
            "GET",
            "/v1/epochs/{id}",
            epoch,
            "One epoch",
            tag="reads",
            responses={200: EpochOut, **_ERR},
        ),
        Route(
            "GET",
            "/v1/feed",
            feed,
            "Change feed: journal frames after a seq (long-poll)",
            tag="reads",
            query_model=FeedQuery,
            responses={200: FeedOut, **_ERR},
        ),
        Route(
            "GET",
            "/v1/export",
            export,
            "Stream every matching record (NDJSON or CSV)",
            tag="reads",
            query_model=ExportQuery,
            responses={200: None, **_ERR},
            streaming=True,
            response_media_type="application/x-ndjson",
        ),
        Route(
            "GET",
            "/v1/audit/queries",
            audit_list,
            "The query audit trail",
            tag="audit",
            query_model=AuditListQuery,
            responses={200: AuditListOut, **_ERR},
        ),
        Route(
            "GET",
            "/v1/audit/query/{query_id}",
            audit_one,
            "One audited query",
            tag="audit",
            responses={200: AuditEntryOut, **_ERR},
        ),
    ]
