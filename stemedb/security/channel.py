"""waitress channel hardening: a deadline per request, and protocol errors as JSON.

**Deadline (slowloris defence).**
waitress reads requests on its event loop, so a slow client never holds a
worker thread; but its `channel_timeout` only closes connections *idle*
that long, so a client trickling one byte every few seconds would hold its
connection (one of `connection_limit`) forever. Like Apache's
mod_reqtimeout, each request must arrive within `STEMEDB_REQUEST_TIMEOUT`
seconds (default 30) from its first byte, extended by one second per
`MIN_RATE_BYTES_PER_S` (500) bytes received, so a large upload on a slow but
honest link still gets through. A request that misses its deadline gets a
408 `request_timeout` and the connection is closed.

**Protocol errors.** Requests waitress refuses itself, before the app sees
them (a malformed request line, a raw control character in the path,
headers over its limit, a body over `max_request_body_size`), get the API's
one error shape too instead of waitress's plain-text page.

This uses only waitress's extension points: the server's `channel_class`,
the channel's `error_task_class` and its `received` method; the server's
loop calls `sweep_deadlines` a few times a second.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from waitress.task import ErrorTask

from stemedb.dispatch import LoopServedChannel

log = logging.getLogger("stemedb.security")

MIN_RATE_BYTES_PER_S = 500.0
PROTOCOL_ERROR_CODES = {
    400: "invalid_request",
    413: "payload_too_large",
    431: "headers_too_large",
    501: "not_implemented",
}
SAFETY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Cache-Control", "no-store"),
)


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class JsonErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's own refusals (400, 413, 431, 501) in the API's error shape."""

    def execute(self) -> None:
        request: Any = self.request
        error = request.error
        code = PROTOCOL_ERROR_CODES.get(error.code, "internal")
        detail = " ".join(str(error.body).split())[:200]
        body = error_body(code, f"{error.reason}: {detail}" if detail else error.reason)
        self.status = f"{error.code} {error.reason}"
        headers: Any = self.response_headers
        headers.extend([("Content-Type", "application/json"), *SAFETY_HEADERS])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def _timeout_response(seconds: float) -> bytes:
    body = error_body(
        "request_timeout",
        f"the request was not received within its deadline ({seconds:g} s plus 1 s per "
        f"{MIN_RATE_BYTES_PER_S:g} bytes received, STEMEDB_REQUEST_TIMEOUT)",
    )
    lines = [
        "HTTP/1.1 408 Request Timeout",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in SAFETY_HEADERS),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class HardenedChannel(LoopServedChannel):
    """An HTTPChannel that gives up on a request arriving too slowly, and answers
    protocol errors in JSON."""

    error_task_class = JsonErrorTask
    request_timeout_s = 30.0
    _started: float | None = None
    _received_bytes = 0

    def received(self, data: bytes) -> bool:
        if self.request is None and data and self._started is None:
            self._started = time.monotonic()
            self._received_bytes = 0
        self._received_bytes += len(data)
        result: bool = super().received(data)
        if self.request is None:  # complete (or nothing pending): stop the clock
            self._started = None
        return result

    def deadline_passed(self, now: float) -> bool:
        if self._started is None or self.requests:
            return False  # nothing partial, or a request running: its response comes first
        allowed = self.request_timeout_s + self._received_bytes / MIN_RATE_BYTES_PER_S
        return now - self._started > allowed

    def _time_out(self) -> None:
        log.warning(
            "408: request from %s not received within its deadline (%d bytes in %.0f s); closing",
            self.addr[0] if self.addr else "?",
            self._received_bytes,
            time.monotonic() - (self._started or 0.0),
        )
        self._started = None
        self.request = None
        payload = _timeout_response(self.request_timeout_s)
        with self.outbuf_lock:
            self.outbufs[-1].append(payload)
            self.total_outbufs_len += len(payload)
            self.current_outbuf_count += len(payload)
        self.close_when_flushed = True


def sweep_deadlines(socket_map: dict[int, Any], now: float) -> int:
    """Time out every channel whose partial request missed its deadline; how many.

    The server's loop calls this a few times a second. (Checking inside
    `readable()`, which the event loop calls for every channel on every turn,
    cost 1.4 % of a query's CPU at 32 connections.)
    """
    expired = 0
    for channel in list(socket_map.values()):
        if isinstance(channel, HardenedChannel) and channel.deadline_passed(now):
            channel._time_out()
            expired += 1
    return expired


def install_channel(listeners: Iterable[Any], request_timeout_s: float) -> None:
    """Make every waitress listener create HardenedChannels with this deadline."""
    channel_class = type(
        "StemeChannel", (HardenedChannel,), {"request_timeout_s": request_timeout_s}
    )
    for listener in listeners:
        listener.channel_class = channel_class
