"""End-to-end fixtures: one real `stemedb serve` per `test_endpoints_*`
module (each uses its own subject prefix so they cannot disturb each other).
`server_factory` is in tests/conftest.py; helpers are in tests/e2ekit.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from e2ekit import Agent, Api, RunningServer, ServerFactory


@pytest.fixture(scope="module")
def shared_server(module_server_factory: ServerFactory) -> RunningServer:
    """One real server for all `tests/e2e/test_endpoints_*` modules."""
    return module_server_factory()


@pytest.fixture(scope="module")
def api(shared_server: RunningServer) -> Api:
    return shared_server.api


@pytest.fixture
def new_agent() -> Callable[[], Agent]:
    return Agent
