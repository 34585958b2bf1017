"""Plain helpers of the end-to-end tests: a stdlib HTTP client (`Api`), a signing
agent (`Agent`), polling, and the `sqlite3` shell.

Import them by name (`from e2ekit import Api, Agent`); fixtures live in the
conftest files.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemedb.crypto import generate_signing_key, public_key_hex
from stemedb.signing import make_assertion, sign_record

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


def metric_value(api: Api, name: str) -> float | None:
    """One sample of `name` (no labels) from /metrics, or None when absent."""
    text = api.call("GET", "/metrics", timeout=5).body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_for_metric(api: Api, name: str, at_least: float, timeout: float = 15.0) -> None:
    """Poll /metrics until `name` >= `at_least` (synchronise on state, never on sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = metric_value(api, name)
        if value is not None and value >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError(f"{name} did not reach {at_least} within {timeout} s")
