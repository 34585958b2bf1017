"""Fixtures for the security tests: an in-process app with the real store, routes and
security middleware (`secure_app`), signing agents, HTTP over a real socket, and
journal row counts read with the `sqlite3` shell. Helpers: tests/securekit.py.

Real server processes come from the root conftest's `run_server_process`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from securekit import ROOT_KEY, Agent, Resp, SecureApp, open_app, request, sqlite_count


@pytest.fixture
def secure_app(tmp_path: Path) -> Iterator[Callable[..., SecureApp]]:
    """Factory `secure_app(**env)` (env as STEMEDB_* strings); stores closed at teardown."""
    opened: list[SecureApp] = []

    def make(**env: str) -> SecureApp:
        app = open_app(tmp_path / f"app{len(opened)}", env)
        opened.append(app)
        return app

    yield make
    for app in opened:
        app.store.close()


@pytest.fixture(scope="module")
def auth_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureApp]:
    """One auth-enabled app per module (root key seeded, limits off)."""
    app = open_app(
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


@pytest.fixture
def http() -> Callable[..., Resp]:
    """`http(base_url, method, path, body=None, headers=None)` -> Resp (headers lower-cased)."""
    return request


@pytest.fixture
def row_counts() -> Callable[[Path], dict[str, int]]:
    def counts(db_path: Path) -> dict[str, int]:
        return {
            table: sqlite_count(db_path, table)
            for table in ("journal", "assertions", "votes", "epochs", "supersessions", "aliases")
        }

    return counts
