"""systemd's sd_notify protocol without a library: one datagram to $NOTIFY_SOCKET.

Used for `Type=notify` units: READY=1 after the listener is bound, STOPPING=1
when a shutdown starts. Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
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
