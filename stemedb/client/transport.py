"""HTTP for the client: one keep-alive connection per thread, retries, streaming.

Standard library only (`http.client`), so the client adds no dependency.
A connection is kept per thread because `http.client` connections are not
thread-safe and a pool would be more code than the problem needs: a thread
that makes many calls reuses its socket, threads never share one.

Retries follow one rule: a request is retried (on a connection error, a
timeout or a 503) only when repeating it cannot change the outcome. GETs are
safe; writes are safe only when the caller says so (a signed record has a
fixed id, so a repeat answers `exists`). A 4xx is never retried: the same
request would fail the same way.
"""

from __future__ import annotations

import http.client
import json
import random
import select
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

from stemedb import __version__
from stemedb.client.errors import ApiError, ConnectionFailed

USER_AGENT = f"stemedb-client/{__version__}"
Params = Mapping[str, Any]

# Connection-level failures worth a retry (all OSError or HTTPException).
_TRANSIENT = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def encode_params(params: Params | None) -> str:
    """Query string without None values; booleans as `true`/`false` (what the API parses)."""
    if not params:
        return ""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | tuple | set | frozenset):
            value = ",".join(str(v) for v in value)
        pairs.append((key, str(value)))
    return urllib.parse.urlencode(pairs)


class Transport:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"base_url must be http://host[:port] or https://..., got {base_url!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        self._local = threading.local()

    # ---- connections ---------------------------------------------------------

    def _new_connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        """This thread's connection; a fresh one if the server has closed the old one."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and _peer_closed(conn):
            self.close()
            conn = None
        if conn is None:
            conn = self._new_connection(timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def close(self) -> None:
        """Close this thread's connection (other threads keep theirs)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    # ---- requests ------------------------------------------------------------

    def url_path(self, path: str, params: Params | None = None) -> str:
        query = encode_params(params)
        return self.prefix + path + (f"?{query}" if query else "")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: bytes | Iterable[bytes] | None = None,
        content_type: str = "application/json",
        idempotent: bool,
        ok: Iterable[int] = (200, 201),
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """One logical call, retried per the module rule; raise ApiError unless `ok`.

        `body` may be an iterable of byte chunks (sent with chunked encoding);
        such a body can be sent only once, so it is never retried.
        """
        ok_statuses = frozenset(ok)
        sent = self._headers(headers, body, content_type)
        url = self.url_path(path, params)
        limit = timeout if timeout is not None else self.timeout
        streamed = body is not None and not isinstance(body, bytes)
        retryable = idempotent and not streamed
        attempt = 0
        while True:
            try:
                response = self._once(method, url, body, sent, limit, streamed)
            except _TRANSIENT as exc:
                self.close()
                if retryable and attempt < self.retries:
                    self._sleep(attempt, None)
                    attempt += 1
                    continue
                raise self._connection_failed(method, url, exc, idempotent, sent) from None
            if response.status in ok_statuses:
                return response
            error = ApiError.from_response(
                response.status,
                response.body,
                response.headers.get("X-Request-Id") or sent["X-Request-Id"],
                response.headers.get("Retry-After"),
            )
            if response.status == 503 and retryable and attempt < self.retries:
                self._sleep(attempt, error.retry_after)
                attempt += 1
                continue
            raise error

    def _once(
        self,
        method: str,
        url: str,
        body: bytes | Iterable[bytes] | None,
        headers: dict[str, str],
        timeout: float,
        streamed: bool,
    ) -> Response:
        conn = self._connection(timeout)
        conn.request(method, url, body=body, headers=headers, encode_chunked=streamed)
        resp = conn.getresponse()
        data = resp.read()
        if resp.will_close:
            self.close()
        return Response(resp.status, resp.headers, data)

    def stream_lines(
        self,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[bytes]:
        """GET a streamed body and yield it line by line (newline stripped).

        Uses its own connection, closed when the generator finishes or is
        dropped, so a caller may make other calls while iterating. The
        request is retried until the first byte arrives; a failure after that
        raises ConnectionFailed (the stream cannot be resumed transparently).
        """
        sent = self._headers(headers, None, "")
        url = self.url_path(path, params)
        attempt = 0
        while True:
            conn = self._new_connection(self.timeout)
            try:
                conn.request("GET", url, headers=sent)
                resp = conn.getresponse()
            except _TRANSIENT as exc:
                conn.close()
                if attempt < self.retries:
                    self._sleep(attempt, None)
                    attempt += 1
                    continue
                raise self._connection_failed("GET", url, exc, True, sent) from None
            if resp.status != 200:
                error = ApiError.from_response(
                    resp.status,
                    resp.read(),
                    resp.headers.get("X-Request-Id") or sent["X-Request-Id"],
                    resp.headers.get("Retry-After"),
                )
                conn.close()
                if resp.status == 503 and attempt < self.retries:
                    self._sleep(attempt, error.retry_after)
                    attempt += 1
                    continue
                raise error
            break
        try:
            while True:
                try:
                    line = resp.readline()
                except _TRANSIENT as exc:
                    raise ConnectionFailed(
                        f"GET {url}: the stream broke after it started ({_describe(exc)})",
                        sent["X-Request-Id"],
                    ) from None
                if not line:
                    return
                yield line.rstrip(b"\r\n")
        finally:
            conn.close()

    # ---- helpers -------------------------------------------------------------

    def _headers(
        self,
        extra: Mapping[str, str] | None,
        body: bytes | Iterable[bytes] | None,
        content_type: str,
    ) -> dict[str, str]:
        sent = {**self.headers, **(extra or {})}
        sent.setdefault("X-Request-Id", uuid.uuid4().hex)
        if body is not None:
            sent["Content-Type"] = content_type
        return sent

    def _sleep(self, attempt: int, retry_after: float | None) -> None:
        """Exponential backoff with full jitter; a server's Retry-After is a floor."""
        delay = random.uniform(0, min(self.max_backoff, self.backoff * (2**attempt)))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff * 4))
        time.sleep(delay)

    def _connection_failed(
        self,
        method: str,
        url: str,
        exc: BaseException,
        idempotent: bool,
        headers: Mapping[str, str],
    ) -> ConnectionFailed:
        where = f"{self.base_url}{url}"
        note = (
            "" if idempotent or method == "GET" else "; the write may or may not have been applied"
        )
        return ConnectionFailed(
            f"{method} {where}: {_describe(exc)}{note}", headers.get("X-Request-Id")
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer before the timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running? start it with `stemedb serve`)"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _peer_closed(conn: http.client.HTTPConnection) -> bool:
    """True when an idle keep-alive socket was closed by the server (EOF is readable).

    The server closes idle connections after its channel timeout; sending on
    such a socket fails in ways that cannot be told apart from a failure
    after the server read the request, so this is checked *before* sending.
    """
    sock = conn.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))  # readable when idle = EOF (or garbage): unusable
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True
