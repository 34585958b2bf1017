"""Client calls for the defences against untrusted writers (issue 19), mounted on `Client`.

Quarantine decisions are signed `quarantine_decision` records, so releasing
or rejecting needs the client's (admin) signing key like any other write;
breakers are local server state and take no signature.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import quote

from stemedb.client.base import BaseClient
from stemedb.client.types import WriteResult


def admin_quarantine(self: BaseClient) -> dict[str, Any]:
    """Held records with the reason each was held (admin)."""
    return cast(dict[str, Any], self._get("/v1/admin/quarantine"))


def _decide(
    self: BaseClient, decision: str, target_hash: str, reason: str | None, timestamp: int | None
) -> WriteResult:
    fields = {
        "target_hash": target_hash,
        "decision": decision,
        "reason": reason,
        "timestamp": timestamp,
    }
    path = f"/v1/admin/quarantine/{quote(target_hash, safe='')}/{decision}"
    return self._write("quarantine_decision", path, fields)


def admin_quarantine_release(
    self: BaseClient, target_hash: str, *, reason: str | None = None, timestamp: int | None = None
) -> WriteResult:
    """Release a held record: lenses count it from now on (a signed admin record)."""
    return _decide(self, "release", target_hash, reason, timestamp)


def admin_quarantine_reject(
    self: BaseClient, target_hash: str, *, reason: str | None = None, timestamp: int | None = None
) -> WriteResult:
    """Reject a held record: it stays journalled, and lenses never count it."""
    return _decide(self, "reject", target_hash, reason, timestamp)


def admin_breakers(self: BaseClient) -> dict[str, Any]:
    """Circuit breakers: every agent tripped or being watched, with reason and reset time."""
    return cast(dict[str, Any], self._get("/v1/admin/breakers"))


def admin_breaker_reset(self: BaseClient, agent_id: str) -> dict[str, Any]:
    """Close one agent's breaker now (admin)."""
    path = f"/v1/admin/breakers/{quote(agent_id, safe='')}/reset"
    return cast(dict[str, Any], self._post(path, None, idempotent=True))
