"""The CLI tests' server: one real server per test module, stopped after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import serverkit as SHARED


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SHARED.ServerProcess]:
    """A server for the module's CLI calls (`--url server.url`), in its own data folder."""
    tmp = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    proc = SHARED.ServerProcess(SHARED.SERVE_ARGV, SHARED.server_env(tmp), tmp, tmp / "server.log")
    try:
        assert proc.wait_ready(), proc.output
        yield proc
    finally:
        proc.kill()
