"""The journal: append-only frames linked by a SHA3-256 hash chain.

`chain(n) = SHA3-256(chain(n-1) || hash(n) || decimal_ascii(written_ms(n)))`
with `chain(-1)` = 32 zero bytes. The same computation is one query in the
stock `sqlite3` shell (see docs/forensics.md), which is why it is SHA3.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import apsw

from stemedb.store.schema import fetchall

HEADER_FORMAT = "stemedb-journal"
HEADER_VERSION = 1
ZERO_CHAIN = bytes(32)

SELECT_FRAMES = "SELECT seq, kind, hash, body, written_ms, chain FROM journal"


def sha3(data: bytes) -> bytes:
    return hashlib.sha3_256(data).digest()


def next_chain(previous: bytes, frame_hash: bytes, written_ms: int) -> bytes:
    return sha3(previous + frame_hash + str(written_ms).encode("ascii"))


@dataclass(frozen=True)
class Frame:
    seq: int
    kind: str
    hash: bytes
    body: str
    written_ms: int
    chain: bytes

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> Frame:
        seq, kind, frame_hash, body, written_ms, chain = row
        return cls(int(seq), str(kind), bytes(frame_hash), str(body), int(written_ms), bytes(chain))  # type: ignore[call-overload, arg-type]


@dataclass(frozen=True)
class Head:
    """The chain head: what backups, health and verify report."""

    seq: int
    chain: bytes

    @property
    def chain_hex(self) -> str:
        return self.chain.hex()


class JournalError(Exception):
    """The journal is missing, foreign or broken; `seq` names the first bad frame."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


def header_body(node_id: str | None = None, created_ms: int | None = None) -> str:
    header = {
        "created_ms": created_ms if created_ms is not None else int(time.time() * 1000),
        "format": HEADER_FORMAT,
        "node_id": node_id or secrets.token_hex(8),
        "version": HEADER_VERSION,
    }
    return json.dumps(header, separators=(",", ":"), sort_keys=True)


def write_header(conn: apsw.Connection, node_id: str | None = None) -> Head:
    """Write frame 0; the caller holds the transaction."""
    body = header_body(node_id)
    written_ms = json.loads(body)["created_ms"]
    frame_hash = sha3(body.encode("utf-8"))
    chain = next_chain(ZERO_CHAIN, frame_hash, written_ms)
    conn.execute(
        "INSERT INTO journal (seq, kind, hash, body, written_ms, chain)"
        " VALUES (0, 'header', ?, ?, ?, ?)",
        (frame_hash, body, written_ms, chain),
    )
    return Head(0, chain)


def check_header(conn: apsw.Connection) -> dict[str, object]:
    """Return the parsed header or raise JournalError naming what is wrong."""
    rows = fetchall(conn, "SELECT kind, hash, body FROM journal WHERE seq = 0")
    if not rows:
        raise JournalError("journal header frame (seq 0) is missing", 0)
    kind, frame_hash, body = rows[0]
    try:
        header = json.loads(body)
    except ValueError:
        raise JournalError("journal header frame is not JSON", 0) from None
    if kind != "header" or not isinstance(header, dict) or header.get("format") != HEADER_FORMAT:
        raise JournalError(f"journal header has unknown format (want {HEADER_FORMAT!r})", 0)
    if header.get("version") != HEADER_VERSION:
        raise JournalError(
            f"journal header version {header.get('version')!r} is not supported "
            f"(this build reads version {HEADER_VERSION})",
            0,
        )
    if bytes(frame_hash) != sha3(str(body).encode("utf-8")):
        raise JournalError("journal header frame hash does not match its body", 0)
    return header


def read_head(conn: apsw.Connection) -> Head | None:
    rows = fetchall(conn, "SELECT seq, chain FROM journal ORDER BY seq DESC LIMIT 1")
    if not rows:
        return None
    return Head(int(rows[0][0]), bytes(rows[0][1]))


def append(
    conn: apsw.Connection, head: Head, kind: str, frame_hash: bytes, body: str, written_ms: int
) -> Head:
    """Append one frame after `head`; the caller holds the transaction."""
    seq = head.seq + 1
    chain = next_chain(head.chain, frame_hash, written_ms)
    conn.execute(
        "INSERT INTO journal (seq, kind, hash, body, written_ms, chain) VALUES (?, ?, ?, ?, ?, ?)",
        (seq, kind, frame_hash, body, written_ms, chain),
    )
    return Head(seq, chain)


def iter_frames(
    conn: apsw.Connection, after: int = -1, until: int | None = None, batch: int = 2000
) -> Iterator[Frame]:
    """Stream frames in seq order in bounded chunks (constant memory)."""
    cursor = after
    while True:
        if until is None:
            rows = fetchall(
                conn, f"{SELECT_FRAMES} WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, batch)
            )
        else:
            rows = fetchall(
                conn,
                f"{SELECT_FRAMES} WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (cursor, until, batch),
            )
        if not rows:
            return
        for row in rows:
            yield Frame.from_row(row)
        cursor = int(rows[-1][0])


def chain_before(conn: apsw.Connection, seq: int) -> bytes:
    if seq <= 0:
        return ZERO_CHAIN
    rows = fetchall(conn, "SELECT chain FROM journal WHERE seq = ?", (seq - 1,))
    if not rows:
        raise JournalError(f"journal frame {seq - 1} is missing", seq - 1)
    return bytes(rows[0][0])


def verify_frames(frames: Iterator[Frame], previous_chain: bytes, expect_seq: int) -> int:
    """Check seq continuity, each frame's hash and the chain; return the frames checked.

    Raises JournalError naming the first bad seq.
    """
    checked = 0
    for frame in frames:
        if frame.seq != expect_seq:
            raise JournalError(
                f"journal gap: expected seq {expect_seq}, found {frame.seq}", expect_seq
            )
        if sha3(frame.body.encode("utf-8")) != frame.hash:
            raise JournalError(f"frame {frame.seq}: hash does not match its body", frame.seq)
        chain = next_chain(previous_chain, frame.hash, frame.written_ms)
        if chain != frame.chain:
            raise JournalError(f"frame {frame.seq}: chain link is broken", frame.seq)
        previous_chain = chain
        expect_seq += 1
        checked += 1
    return checked


def verify_range(conn: apsw.Connection, first: int, last: int | None = None) -> int:
    """Verify frames first..last (inclusive; None = to the head)."""
    first = max(first, 0)
    return verify_frames(
        iter_frames(conn, after=first - 1, until=last), chain_before(conn, first), first
    )
