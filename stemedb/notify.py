"""systemd's sd_notify protocol without a library: one datagram to $NOTIFY_SOCKET.

Used for `Type=notify` units: READY=1 after the listener is bound, STOPPING=1
when a shutdown starts, EXTEND_TIMEOUT_USEC while a long one-time start-up step
runs. Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("stemedb.notify")


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `message` (e.g. "READY=1"); True if it was sent. Never raises."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.warning("ignoring NOTIFY_SOCKET %r: not a unix socket path", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.warning("could not notify systemd (%s): %s", message.split("\n")[0], exc)
        return False
    return True


def ready(status: str = "", environ: Mapping[str, str] | None = None) -> bool:
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""), environ)


def stopping(environ: Mapping[str, str] | None = None) -> bool:
    return notify("STOPPING=1", environ)


class StartupProgress:
    """Keep systemd's start timeout (`TimeoutStartSec`) from killing a long one-time
    start-up step, such as the rebuild after an upgrade: killed, it would roll back
    and start over at every restart. Called as `(done, total)`; at the first call and
    then every `every_s` seconds it asks for `extend_s` more seconds, with a STATUS
    line `systemctl status` shows."""

    def __init__(
        self,
        what: str,
        environ: Mapping[str, str] | None = None,
        *,
        every_s: float = 5.0,
        extend_s: float = 60.0,
    ) -> None:
        self.what = what
        self.environ = environ
        self.every_s = every_s
        self.extend_us = int(extend_s * 1_000_000)
        self._last: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.every_s:
            return
        self._last = now
        status = f"{self.what}: {done:,} of {total:,} frames"
        notify(f"EXTEND_TIMEOUT_USEC={self.extend_us}\nSTATUS={status}", self.environ)
