"""Operations endpoints: health, readiness, admin stats and verify."""

from __future__ import annotations

import falcon

from stemedb import __version__, admission
from stemedb.api.errors import ErrorResponse
from stemedb.api.resources.common import json_response
from stemedb.api.routing import Route
from stemedb.service.models import HealthOut, ReadyOut, StatsOut, VerifyOut
from stemedb.service.operations import Operations


def routes(operations: Operations) -> list[Route]:
    def health(req: falcon.Request, resp: falcon.Response) -> None:
        stats = operations.stats()
        degraded = stats["degraded"]
        body = {
            "status": "degraded" if degraded else "healthy",
            "version": __version__,
            "uptime_seconds": operations.uptime_seconds(),
            "assertion_count": stats["assertion_count"],
            "journal_seq": stats["journal_seq"],
            "chain_head": stats["chain_head"],
        }
        if degraded:
            body["reason"] = degraded
        json_response(resp, body, 503 if degraded else 200)

    def ready(req: falcon.Request, resp: falcon.Response) -> None:
        reason = operations.degraded_reason()  # full disk or I/O error: writes are refused
        json_response(
            resp, {"ready": reason is None, "reason": reason}, 200 if reason is None else 503
        )

    def stats(req: falcon.Request, resp: falcon.Response) -> None:
        body = operations.stats()
        body["uptime_seconds"] = operations.uptime_seconds()
        body["version"] = __version__
        json_response(resp, body)

    def verify_now(req: falcon.Request, resp: falcon.Response) -> None:
        with admission.blocking():  # a long scan must not hold a request slot
            report = operations.verify()
        json_response(resp, report.to_dict(), 200 if report.ok else 500)

    return [
        Route(
            "GET",
            "/v1/health",
            health,
            "Liveness and chain head",
            tag="operations",
            inline=True,
            urgent=True,
            auth="public",
            responses={200: HealthOut, 503: HealthOut},
        ),
        Route(
            "GET",
            "/v1/ready",
            ready,
            "Readiness (migrations, recovery, writer)",
            tag="operations",
            inline=True,
            urgent=True,
            auth="public",
            responses={200: ReadyOut, 503: ReadyOut},
        ),
        Route(
            "GET",
            "/v1/admin/stats",
            stats,
            "Store statistics",
            tag="admin",
            auth="admin",
            responses={200: StatsOut, 401: ErrorResponse, 403: ErrorResponse},
        ),
        Route(
            "POST",
            "/v1/admin/verify",
            verify_now,
            "Verify the journal chain and projections",
            tag="admin",
            auth="admin",
            responses={200: VerifyOut, 500: VerifyOut},
            content_types=("application/json",),
        ),
    ]
