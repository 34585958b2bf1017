"""Helpers of the record-rights tests: a real `stemedb serve` with auth on, its keys
made through the admin API, and requests carrying an API key.

Import by name (`from rightskit import AuthServer`); the tests start the server
through the session's `server_factory` fixture.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from e2ekit import Api, Resp, RunningServer, sqlite3_shell

ROOT_KEY = "root-rights-key-0123456789abcdef0123456789abcdef"
AUTH_ENV = {
    "STEMEDB_AUTH_ENABLED": "true",
    "STEMEDB_ROOT_API_KEY": ROOT_KEY,
    "STEMEDB_REQUIRE_SIGNATURES": "true",
    "STEMEDB_RATE_LIMIT_READ": "0",
    "STEMEDB_RATE_LIMIT_WRITE": "0",
    "STEMEDB_RATE_LIMIT_ADMIN": "0",
    "STEMEDB_QUERY_AUDIT": "false",
    "STEMEDB_NEW_AGENTS_PER_HOUR": "0",  # these tests mint a fresh signer per case
}


@dataclass
class AuthServer:
    """A running server with auth on; `keys` maps a role name to an API key."""

    server: RunningServer
    keys: dict[str, str]

    @property
    def api(self) -> Api:
        return self.server.api

    def new_key(self, role: str, scope: str | None = None) -> str:
        body: dict[str, Any] = {"role": role, "name": f"{role} {scope or ''}".strip()}
        if scope:
            body["scope"] = scope
        resp = self.api.post("/v1/admin/keys", body, headers={"X-API-Key": ROOT_KEY})
        assert resp.status == 201, resp
        key: str = resp.json["api_key"]
        return key

    def post(self, path: str, body: Any, key: str, **kw: Any) -> Resp:
        return self.api.post(path, body, headers={"X-API-Key": key}, **kw)

    def ndjson(self, records: Sequence[Mapping[str, Any]], key: str, atomic: bool = False) -> Resp:
        data = "".join(json.dumps(record) + "\n" for record in records).encode()
        return self.api.call(
            "POST",
            "/v1/assert/batch",
            params={"atomic": "true"} if atomic else None,
            data=data,
            content_type="application/x-ndjson",
            headers={"X-API-Key": key},
        )

    def admin_write(self, path: str, record: Mapping[str, Any]) -> str:
        resp = self.post(path, record, ROOT_KEY)
        assert resp.status in (200, 201), resp
        digest: str = resp.json["hash"]
        return digest

    def head_seq(self) -> int:
        return int(sqlite3_shell(self.server.db_path, "SELECT max(seq) FROM journal;")[0])

    def count(self, sql: str) -> int:
        return int(sqlite3_shell(self.server.db_path, sql)[0])
