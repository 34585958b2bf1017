"""Who listens on a TCP port, from /proc alone (no lsof or ss on minimal hosts).

/proc/net/tcp{,6} maps listening sockets to inode numbers; /proc/<pid>/fd
holds `socket:[inode]` links. Without root, other users' fd folders are
unreadable, so the owner may be unknown even though the port is taken.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    inode: int
    uid: int


@dataclass(frozen=True)
class Owner:
    pid: int
    command: str


def _decode_address(hex_addr: str) -> str:
    """Kernel notation (host-order 32-bit words) to a printable address."""
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return ".".join(str(b) for b in reversed(raw))
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    joined = b"".join(words)
    groups = [joined[i : i + 2].hex() for i in range(0, 16, 2)]
    return ":".join(g.lstrip("0") or "0" for g in groups)


def listeners(port: int, proc: Path = Path("/proc")) -> list[Listener]:
    """Sockets in LISTEN state on `port` (IPv4 and IPv6)."""
    found = []
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != LISTEN:
                continue
            address, _, port_hex = parts[1].partition(":")
            if int(port_hex, 16) != port:
                continue
            found.append(Listener(_decode_address(address), port, int(parts[9]), int(parts[7])))
    return found


def socket_owners(inodes: set[int], proc: Path = Path("/proc")) -> list[Owner]:
    """Processes holding any of the socket inodes (those whose fds we may read)."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    owners = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.scandir(f"{entry.path}/fd")
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) in wanted:
                        owners.append(Owner(int(entry.name), _command(Path(entry.path))))
                        break
                except OSError:
                    continue
    return owners


def _command(pid_dir: Path) -> str:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        return "?"
    text = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    if text:
        return text
    try:
        return (pid_dir / "comm").read_text().strip()
    except OSError:
        return "?"


def port_owners(port: int, proc: Path = Path("/proc")) -> tuple[list[Listener], list[Owner]]:
    found = listeners(port, proc)
    return found, socket_owners({item.inode for item in found}, proc) if found else []
