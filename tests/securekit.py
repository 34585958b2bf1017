"""Plain helpers of the security tests: the real app in-process (`open_app`),
signing agents, raw HTTP requests and `sqlite3` row counts.

Import them by name (`from securekit import SecureApp`); fixtures live in
tests/security/conftest.py.
"""

from __future__ import annotations

import http.client as httpclient
import json
import subprocess
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import falcon.testing

from stemedb.api.app import create_app
from stemedb.api.endpoints import build_routes
from stemedb.config import Settings, load_settings
from stemedb.crypto import generate_signing_key, public_key_hex
from stemedb.metrics import Metrics
from stemedb.security import build_middleware
from stemedb.security.keys import KeyStore
from stemedb.signing import make_assertion, sign_record
from stemedb.store import Store

ROOT_KEY = "root-test-key-0123456789abcdef0123456789abcdef"


@dataclass
class Agent:
    """An Ed25519 identity that signs records the way the client library does."""

    seed: bytes = field(default_factory=generate_signing_key)

    @property
    def id(self) -> str:
        return public_key_hex(self.seed)

    def assertion(self, subject: str, predicate: str = "p", value: Any = "v", **kw: Any) -> Any:
        return make_assertion(self.seed, subject, predicate, value, 0.9, **kw)

    def record(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return sign_record(kind, body, [self.seed])


@dataclass
class SecureApp:
    """The real app in-process: `client.simulate_*`, plus its store, keys and metrics."""

    client: falcon.testing.TestClient
    settings: Settings
    store: Store
    metrics: Metrics

    @property
    def keys(self) -> KeyStore:
        return KeyStore.for_store(self.store)

    def new_key(self, role: str, **kw: Any) -> str:
        return self.keys.create(role, **kw)[1]

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def open_app(tmp: Path, env: Mapping[str, str]) -> SecureApp:
    settings = load_settings(
        {"STEMEDB_DB_DIR": str(tmp / "db"), "STEMEDB_WAL_DIR": str(tmp / "wal"), **env}
    )
    settings.db_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics("0.0.0-test")
    store = Store(settings, on_commit=metrics.observe_commit).open()
    routes = build_routes(settings, store, metrics)
    middleware = build_middleware(settings, store, metrics)
    app = create_app(settings, routes, metrics, extra_middleware=middleware)
    return SecureApp(falcon.testing.TestClient(app), settings, store, metrics)


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def error(self) -> dict[str, Any]:
        body = self.json
        assert isinstance(body, dict) and "error" in body, self.body[:300]
        error: dict[str, Any] = body["error"]
        return error


def request(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> Resp:
    """One HTTP request; bytes are sent as they are, anything else as JSON."""
    parts = urllib.parse.urlsplit(base_url)
    sent = dict(headers or {})
    data: bytes | None
    if body is None or isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        raw = resp.read()
        return Resp(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw)
    finally:
        conn.close()


def sqlite_count(db_path: Path, table: str) -> int:
    """Row count through the `sqlite3` shell, read-only (works next to a running server)."""
    out = subprocess.run(
        ["sqlite3", "-readonly", str(db_path), f"SELECT count(*) FROM {table};"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(out.stdout.strip())
