"""A deadline for receiving each request (slowloris defence).

waitress reads requests on its event loop, so a slow client never holds a
worker thread; but its `channel_timeout` only closes connections *idle*
that long, so a client trickling one byte every few seconds would hold its
connection (one of `connection_limit`) forever. Like Apache's
mod_reqtimeout, each request must arrive within `STEMEDB_REQUEST_TIMEOUT`
seconds (default 30) from its first byte, extended by one second per
`MIN_RATE_BYTES_PER_S` (500) bytes received, so a large upload on a slow but
honest link still gets through. A request that misses its deadline gets a
408 `request_timeout` and the connection is closed.

This touches only waitress's public extension points: the server's
`channel_class` and the channel's `received`/`readable` hooks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from waitress.channel import HTTPChannel

log = logging.getLogger("stemedb.security")

MIN_RATE_BYTES_PER_S = 500.0


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": "request_timeout",
                "message": f"the request was not received within its deadline ({seconds:g} s "
                f"plus 1 s per {MIN_RATE_BYTES_PER_S:g} bytes, STEMEDB_REQUEST_TIMEOUT)",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\r\n"
    )
    return head.encode("ascii") + body


class DeadlineChannel(HTTPChannel):  # type: ignore[misc]
    """An HTTPChannel that gives up on a request arriving too slowly."""

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

    def readable(self) -> bool:
        if self.deadline_passed(time.monotonic()):
            self._time_out()
            return False
        readable: bool = super().readable()
        return readable

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


def install_request_deadline(listeners: Iterable[Any], seconds: float) -> None:
    """Make every waitress listener create DeadlineChannels with this deadline."""
    channel_class = type("StemeDeadlineChannel", (DeadlineChannel,), {"request_timeout_s": seconds})
    for listener in listeners:
        listener.channel_class = channel_class
