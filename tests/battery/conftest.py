"""Fixtures of the acceptance batteries (acceptance.md): one real server per module.
`server_factory` is in tests/conftest.py; helpers are in tests/e2ekit.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def server(module_server_factory: Any) -> Iterator[Any]:
    """A fresh server (empty database) for one battery module."""
    running = module_server_factory()
    yield running
    running.proc.kill()


@pytest.fixture(scope="module")
def bapi(server: Any) -> Any:
    return server.api
