"""End-to-end fixtures: real `stemedb serve` processes shared per session/module.

Builds on `tests/conftest.py` (`ServerProcess`, `server_env`, `http_json`,
`SERVE_ARGV`), which is loaded here by path: pytest keeps only the most
recently imported `conftest` module in `sys.modules`, and test modules of this
folder do `from conftest import ...`, so the names they import from the root
conftest are re-exported below.

Everything talks HTTP through the standard library only (`Api`), signs with
`stemedb.signing` (`Agent`), and starts each server once (`server_factory`
is session-scoped; `shared_server` is the one the `test_endpoints_*` modules
share, each module using its own subject prefix so they cannot disturb each
other).
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stemedb.crypto import generate_signing_key, public_key_hex
from stemedb.signing import make_assertion, sign_record


def _load_root_conftest() -> Any:
    name = "_stemedb_tests_root_conftest"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_root = _load_root_conftest()
# Re-exported for `from conftest import ...` in test modules (ours and those of folders
# without a conftest collected after this one): every plain helper of the root conftest.
SERVE_ARGV = _root.SERVE_ARGV
ServerProcess = _root.ServerProcess
StartServer = _root.StartServer
http_json = _root.http_json
server_env = _root.server_env
for _name in dir(_root):
    if not _name.startswith("_") and "fixture" not in type(getattr(_root, _name)).__name__.lower():
        globals().setdefault(_name, getattr(_root, _name))


# ---- HTTP -------------------------------------------------------------------------


@dataclass
class Resp:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def error(self) -> dict[str, Any]:
        body = self.json
        assert isinstance(body, dict) and "error" in body, f"not an error body: {self.text[:300]}"
        return body["error"]

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def __repr__(self) -> str:
        return f"<Resp {self.status} {self.text[:400]!r}>"


def encode_params(params: Mapping[str, Any] | None) -> str:
    if not params:
        return ""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        pairs.append((key, str(value)))
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


class Api:
    """A tiny stdlib HTTP client bound to one server."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = int(parts.port or 80)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
        timeout: float = 60.0,
    ) -> Resp:
        sent = dict(headers or {})
        payload = data
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            sent.setdefault("Content-Type", "application/json")
        if content_type is not None:
            sent["Content-Type"] = content_type
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path + encode_params(params), body=payload, headers=sent)
            resp = conn.getresponse()
            raw = resp.read()
            return Resp(resp.status, resp.headers, raw)
        finally:
            conn.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> Resp:
        return self.call("GET", path, params=params, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return self.call("POST", path, body, **kw)

    # Asserting shortcuts: the JSON of a response with the expected status.
    def ok(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: int | Sequence[int] = 200,
        **kw: Any,
    ) -> Any:
        resp = self.call(method, path, body, **kw)
        wanted = (expect,) if isinstance(expect, int) else tuple(expect)
        assert resp.status in wanted, f"{method} {path}: {resp!r}"
        return resp.json

    def get_ok(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        return self.ok("GET", path, params=params, **kw)

    def write(self, path: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """POST one record; expect 201 created."""
        body: dict[str, Any] = self.ok("POST", path, record, expect=201)
        assert body["status"] == "created", body
        return body

    def batch(
        self, records: Sequence[Mapping[str, Any]], *, atomic: bool = False, expect: int = 200
    ) -> dict[str, Any]:
        body: dict[str, Any] = self.ok(
            "POST",
            "/v1/assert/batch",
            list(records),
            params={"atomic": "true"} if atomic else None,
            expect=expect,
        )
        return body

    def batch_ok(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Write records in one batch; every one must be created or exist. Returns hashes."""
        body = self.batch(records)
        bad = [r for r in body["results"] if r["status"] not in ("created", "exists")]
        assert not bad, bad
        return [r["hash"] for r in body["results"]]

    def query(self, **params: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.ok("POST", "/v1/query", params)
        return body


# ---- signing agents -----------------------------------------------------------------


@dataclass
class Agent:
    """An Ed25519 signer: `id` is its agent_id (public key hex)."""

    seed: bytes = field(default_factory=generate_signing_key)

    @property
    def id(self) -> str:
        return public_key_hex(self.seed)

    def assertion(
        self, subject: str, predicate: str, obj: Any, confidence: float = 0.9, **fields: Any
    ) -> dict[str, Any]:
        return make_assertion(self.seed, subject, predicate, obj, confidence, **fields)

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        return sign_record(kind, fields, [self.seed])


def unique(prefix: str = "t") -> str:
    """A fresh concept-path segment, so tests sharing a server never collide."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def poll(fn: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Call `fn` until it returns a truthy value (or fail after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(interval)


# ---- servers ----------------------------------------------------------------------


class RunningServer:
    """A started server process with its `Api`, data dir and a restart helper."""

    def __init__(self, proc: Any, base: Path, env: Mapping[str, str], index: int) -> None:
        self.proc = proc
        self.base = base
        self.env = dict(env)
        self.index = index
        self.api = Api(proc.url)

    @property
    def url(self) -> str:
        return str(self.proc.url)

    @property
    def db_path(self) -> Path:
        return self.base / "db" / "stemedb.db"


ServerFactory = Callable[..., RunningServer]


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """`server_factory(env=None, base=None)`: a ready `stemedb serve` process (port 0).

    Every process started through it is stopped at the end of the session;
    call `.proc.stop()` / `.proc.kill()` earlier to end one sooner. Passing the
    `base` of an earlier server restarts on the same data.
    """
    started: list[Any] = []

    def start(
        env: Mapping[str, str] | None = None, *, base: Path | None = None, timeout: float = 60.0
    ) -> RunningServer:
        base = base or tmp_path_factory.mktemp("server")
        index = len(started)
        log_path = base / f"server-{index}.log"
        full_env = server_env(base, env)
        proc = ServerProcess(SERVE_ARGV, full_env, base, log_path)
        started.append(proc)
        if not proc.wait_ready("/v1/ready", timeout):
            raise AssertionError(f"server exited at start:\n{proc.output}")
        return RunningServer(proc, base, env or {}, index)

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture(scope="session")
def shared_server(server_factory: ServerFactory) -> RunningServer:
    """One real server for all `tests/e2e/test_endpoints_*` modules."""
    return server_factory()


@pytest.fixture(scope="session")
def api(shared_server: RunningServer) -> Api:
    return shared_server.api


@pytest.fixture
def new_agent() -> Callable[[], Agent]:
    return Agent
