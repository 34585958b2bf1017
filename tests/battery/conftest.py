"""Fixtures of the acceptance batteries (acceptance.md): one real server per module.

The helpers (`Api`, `Agent`, `server_factory`, ...) are those of
`tests/e2e/conftest.py`, loaded by path (pytest keeps only the most recent
`conftest` module in `sys.modules`); the battery modules import them with
`from conftest import ...`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _load(name: str, path: Path) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_e2e = _load(
    "_stemedb_tests_e2e_conftest", Path(__file__).resolve().parents[1] / "e2e" / "conftest.py"
)
_root = sys.modules["_stemedb_tests_root_conftest"]

# Plain helpers of the root and e2e conftests, for `from conftest import ...` (fixtures
# are left out: pytest finds the root ones anyway and `server_factory` is re-exported
# explicitly below).
for _module in (_root, _e2e):
    for _name in dir(_module):
        _value = getattr(_module, _name)
        if _name.startswith("_") or "fixture" in type(_value).__name__.lower():
            continue
        globals().setdefault(_name, _value)

server_factory = _e2e.server_factory  # the session-scoped factory (one per session)

DAY = 86400
SQLITE3 = "/usr/bin/sqlite3"
CHAIN_QUERY = """SELECT j.seq FROM journal j JOIN journal p ON p.seq = j.seq - 1
WHERE j.hash <> sha3(j.body, 256)
   OR j.chain <> sha3(p.chain || j.hash || j.written_ms, 256);"""


def sqlite3_shell(db: Path, sql: str, *, readonly: bool = True) -> list[str]:
    """Run `sql` in the stock sqlite3 shell; the non-empty output lines."""
    argv = [SQLITE3, "-bail", *(["-readonly"] if readonly else []), str(db), sql]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)
    return [line for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def server(server_factory: Any) -> Iterator[Any]:
    """A fresh server (empty database) for one battery module."""
    running = server_factory()
    yield running
    running.proc.kill()


@pytest.fixture(scope="module")
def bapi(server: Any) -> Any:
    return server.api
