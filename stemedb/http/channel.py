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

**Send timeout (stalled readers).** The mirror image of slowloris: a client
that asks for a large answer and stops reading. waitress buffers the answer
(spilling past `outbuf_overflow` into a deleted temporary file) and the worker
thread streaming it blocks once `outbuf_high_watermark` bytes wait; its own
`channel_timeout` never fires, because that skips connections with a request
running and acts only when the socket turns writable, which a stalled one never
does. So a connection with unsent output that accepts fewer than
`SEND_PROGRESS_BYTES` (64 KiB) in `STEMEDB_SEND_TIMEOUT` seconds (default 30) is
closed: its buffers and temporary files are freed and the worker thread wakes
with a disconnect. Across all connections, at most `STEMEDB_SEND_BUFFER_TOTAL`
bytes may wait unsent; over that, the largest stalled buffers are closed first.

Not only waitress's extension points: besides the server's `channel_class`
and the channel's `error_task_class`, this overrides `received` and `send`,
reads `request`, `requests`, `connected`, `addr` and `total_outbufs_len`, and
the 408 is appended straight to `outbufs` under `outbuf_lock` (with
`total_outbufs_len` / `current_outbuf_count` kept in step), because
`write_soon` may block the loop thread. Each is in the inventory in
`stemedb/http/__init__.py` with a canary test. The server's loop
(listener.py) calls `sweep_deadlines` a few times a second.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from waitress.task import ErrorTask

from stemedb.http.dispatch import LoopServedChannel

log = logging.getLogger("stemedb.security")

MIN_RATE_BYTES_PER_S = 500.0
SEND_PROGRESS_BYTES = 64 * 1024  # a reader must take this much per send timeout
# waitress output buffering per connection (listener.py passes these to create_server):
# past OUTBUF_OVERFLOW an answer spills to a temporary file; a worker streaming an
# answer blocks while more than OUTBUF_HIGH_WATERMARK bytes wait unsent.
OUTBUF_OVERFLOW = 1024 * 1024
OUTBUF_HIGH_WATERMARK = 2 * 1024 * 1024
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
    send_timeout_s = 30.0
    _started: float | None = None
    _received_bytes = 0
    _sent_bytes = 0
    _stall_since: float | None = None  # when the client last made progress reading
    _stall_mark = 0  # _sent_bytes at that moment

    def send(self, data: bytes, do_close: bool = True) -> int:
        sent: int = super().send(data, do_close)
        self._sent_bytes += sent
        return sent

    def send_stalled(self, now: float) -> bool:
        """True once output has waited `send_timeout_s` with too little of it taken."""
        if not self.total_outbufs_len or not self.connected:
            self._stall_since = None  # nothing waiting: the client is keeping up
            return False
        if self._stall_since is None or self._sent_bytes - self._stall_mark >= SEND_PROGRESS_BYTES:
            self._stall_since, self._stall_mark = now, self._sent_bytes
            return False
        return now - self._stall_since > self.send_timeout_s

    def close_stalled(self, reason: str) -> None:
        """Close now, from the loop thread: frees the buffers (and their temporary
        files) and wakes a worker blocked writing to this connection."""
        log.warning(
            "closing the connection from %s: %s (%d bytes unsent, %d sent; see "
            "docs/security.md, Hostile readers)",
            self.addr[0] if self.addr else "?",
            reason,
            self.total_outbufs_len,
            self._sent_bytes,
        )
        key = reason.split(":", 1)[0]
        send_timeouts[key] = send_timeouts.get(key, 0) + 1
        self.handle_close()

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
    """Time out every channel whose partial request missed its deadline, or whose
    client stopped reading its answer; how many.

    The server's loop calls this a few times a second. (Checking inside
    `readable()`, which the event loop calls for every channel on every turn,
    cost 1.4 % of a query's CPU at 32 connections.)
    """
    expired = 0
    pending: list[HardenedChannel] = []
    total = 0
    for channel in list(socket_map.values()):
        if not isinstance(channel, HardenedChannel):
            continue
        if channel.deadline_passed(now):
            channel._time_out()
            expired += 1
        elif channel.send_stalled(now):
            channel.close_stalled(
                f"send_timeout: the client took no data for {channel.send_timeout_s:g} s "
                "(STEMEDB_SEND_TIMEOUT)"
            )
            expired += 1
        elif channel.total_outbufs_len:
            pending.append(channel)
            total += channel.total_outbufs_len
    if total > send_buffer_total[0]:
        # Over the budget of unsent output: free the largest slow buffers first.
        pending.sort(key=lambda ch: ch.total_outbufs_len, reverse=True)
        for channel in pending:
            if total <= send_buffer_total[0]:
                break
            if channel._stall_since is None or channel._stall_since >= now:
                continue  # it made progress since the last sweep
            total -= channel.total_outbufs_len
            channel.close_stalled(
                f"send_buffer_total: unsent output of all connections over "
                f"{send_buffer_total[0]} bytes (STEMEDB_SEND_BUFFER_TOTAL)"
            )
            expired += 1
    return expired


# Connections closed for not reading, by reason (read by stemedb.metrics at scrape time),
# and the process's budget of unsent output (set by install_channel).
send_timeouts: dict[str, int] = {}
send_buffer_total = [256 * 1024 * 1024]


def install_channel(
    listeners: Iterable[Any],
    request_timeout_s: float,
    send_timeout_s: float = 30.0,
    send_buffer_total_bytes: int = 256 * 1024 * 1024,
) -> None:
    """Make every waitress listener create HardenedChannels with these limits."""
    channel_class = type(
        "StemeChannel",
        (HardenedChannel,),
        {"request_timeout_s": request_timeout_s, "send_timeout_s": send_timeout_s},
    )
    send_buffer_total[0] = send_buffer_total_bytes
    for listener in listeners:
        listener.channel_class = channel_class
