"""Authentication, authorisation, rate limits and quotas (request deadlines: stemedb.http.channel).

`build_middleware(settings, store, metrics)` is what the server adds to the
Falcon app (`create_app(..., extra_middleware=...)`); `KeyStore.for_store`
is shared with the admin key routes so a revocation clears the same cache.
See docs/security.md for the threat model and the decisions.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from stemedb.config import Settings
from stemedb.errors import StemeError
from stemedb.metrics import Metrics
from stemedb.security.breakers import Breakers, CircuitBreakers
from stemedb.security.keys import ApiKey, KeyStore
from stemedb.security.middleware import SecurityMiddleware
from stemedb.security.new_agents import NewAgentLimit

__all__ = ["ApiKey", "KeyStore", "SecurityMiddleware", "build_middleware"]

log = logging.getLogger("stemedb.security")


def build_middleware(settings: Settings, store: Any, metrics: Metrics | None) -> list[object]:
    """The security middleware for `create_app`; seeds STEMEDB_ROOT_API_KEY first."""
    keys = KeyStore.for_store(store) if settings.auth_enabled or settings.root_api_key else None
    if keys is not None and settings.root_api_key:
        try:
            log.info("%s", keys.seed_root(settings.root_api_key))
        except StemeError as exc:  # e.g. a read-only store after a failed journal check
            log.warning("could not seed STEMEDB_ROOT_API_KEY: %s", exc.message)
    if keys is not None and settings.auth_enabled:
        now_ms = int(time.time() * 1000)
        active = [key for key in keys.list() if key.status(now_ms) == "active"]
        if not active:
            log.warning(
                "authentication is on but no API key is active: every request except "
                "health, ready and metrics gets 401. Create one with `stemedb keys create "
                "--role admin` or set STEMEDB_ROOT_API_KEY"
            )
    return [
        SecurityMiddleware(settings, keys=keys, store=store, metrics=metrics),
        NewAgentLimit.for_store(store, settings, metrics),  # after it: notes the payer
        CircuitBreakers(settings, Breakers.for_store(store, settings, metrics)),  # issue 19
    ]
