"""Fixtures for the security tests: an in-process app with the real store, routes and
security middleware (`secure_app`), signing agents, HTTP over a real socket
(`raw_request`), and journal row counts read with the `sqlite3` shell.

Real server processes come from the root conftest's `run_server_process`.
"""

from __future__ import annotations

import http.client as httpclient
import importlib.util
import json
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

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


def _load_root_conftest() -> Any:
    """tests/conftest.py as a module (`from conftest import` here means this file)."""
    name = "_stemedb_tests_root_conftest"  # the name tests/e2e/conftest.py uses too
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


root_conftest = _load_root_conftest()
# Re-exported: whichever folder's conftest pytest imported last is the one other test
# modules get from a run-time `from conftest import ...` (as tests/e2e/conftest.py does).
SERVE_ARGV = root_conftest.SERVE_ARGV
ServerProcess = root_conftest.ServerProcess
StartServer = root_conftest.StartServer
http_json = root_conftest.http_json
server_env = root_conftest.server_env


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


def _open_app(tmp: Path, env: Mapping[str, str]) -> SecureApp:
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


@pytest.fixture
def secure_app(tmp_path: Path) -> Iterator[Callable[..., SecureApp]]:
    """Factory `secure_app(**env)` (env as STEMEDB_* strings); stores closed at teardown."""
    opened: list[SecureApp] = []

    def make(**env: str) -> SecureApp:
        app = _open_app(tmp_path / f"app{len(opened)}", env)
        opened.append(app)
        return app

    yield make
    for app in opened:
        app.store.close()


@pytest.fixture(scope="module")
def auth_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureApp]:
    """One auth-enabled app per module (root key seeded, limits off)."""
    app = _open_app(
        tmp_path_factory.mktemp("auth"),
        {
            "STEMEDB_AUTH_ENABLED": "true",
            "STEMEDB_ROOT_API_KEY": ROOT_KEY,
            "STEMEDB_REQUIRE_SIGNATURES": "true",
            "STEMEDB_RATE_LIMIT_READ": "0",
            "STEMEDB_RATE_LIMIT_WRITE": "0",
            "STEMEDB_RATE_LIMIT_ADMIN": "0",
        },
    )
    yield app
    app.store.close()


@pytest.fixture
def agent() -> Agent:
    return Agent()


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


@pytest.fixture
def http() -> Callable[..., Resp]:
    """`http(base_url, method, path, body=None, headers=None)` -> Resp (headers lower-cased)."""
    return request


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


@pytest.fixture
def row_counts() -> Callable[[Path], dict[str, int]]:
    def counts(db_path: Path) -> dict[str, int]:
        return {
            table: sqlite_count(db_path, table)
            for table in ("journal", "assertions", "votes", "epochs", "supersessions", "aliases")
        }

    return counts
