"""The journal: append-only frames linked by a SHA3-256 hash chain.

`chain(n) = SHA3-256(chain(n-1) || hash(n) || decimal_ascii(written_ms(n)))`
with `chain(-1)` = 32 zero bytes. The same computation is one query in the
stock `sqlite3` shell (see docs/forensics.md), which is why it is SHA3.

Every checker here reads frames through `frame_check` (typeof + CAST AS BLOB),
so no stored value, however damaged, can make a check raise anything but a
`JournalError` naming the seq; the rules themselves live in `frame_check`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import apsw

from stemedb.errors import Unavailable
from stemedb.store import frame_check
from stemedb.store.frame_check import HEADER_FORMAT, HEADER_VERSION, RAW_COLUMNS, RawFrame
from stemedb.store.schema import fetchall

ZERO_CHAIN = bytes(32)

SELECT_FRAMES = f"SELECT {RAW_COLUMNS} FROM journal"
RAW_WIDTH = 11
CORRUPTION_RUNBOOK = "docs/operations/runbooks/corruption.md"


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
    def from_row(cls, row: Sequence[Any]) -> Frame:
        """A frame from a `SELECT_FRAMES` row (or seq, kind, hash, body, written_ms, chain).

        Raises CorruptFrame naming the seq when a column is not what a frame holds
        (bodies are read as blobs so a damaged one cannot raise in the driver).
        """
        if len(row) == RAW_WIDTH:
            return cls.from_raw(frame_check.raw_from_row(row))
        seq, kind, frame_hash, body, written_ms, chain = row
        try:  # kind and body are read as blobs (CAST AS BLOB): decoded here, checked
            text = body.decode("utf-8") if isinstance(body, bytes) else body
            kind = kind.decode("utf-8") if isinstance(kind, bytes) else kind
        except UnicodeDecodeError:
            raise CorruptFrame(int(seq), "kind or body is not valid UTF-8") from None
        if not (
            isinstance(kind, str)
            and isinstance(frame_hash, bytes)
            and isinstance(text, str)
            and isinstance(written_ms, int)
            and isinstance(chain, bytes)
        ):
            raise CorruptFrame(int(seq), "a column does not hold the type of a frame")
        return cls(int(seq), kind, frame_hash, text, written_ms, chain)

    @classmethod
    def from_raw(cls, raw: RawFrame) -> Frame:
        try:
            kind = (raw.kind or b"").decode("utf-8")
            body = (raw.body or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptFrame(raw.seq, "kind or body is not valid UTF-8") from None
        if raw.kind_type != "text" or raw.body_type != "text":
            raise CorruptFrame(raw.seq, "kind or body column is not text")
        if raw.hash_type != "blob" or raw.chain_type != "blob" or raw.written_ms is None:
            raise CorruptFrame(raw.seq, "hash, chain or written_ms column has the wrong type")
        return cls(raw.seq, kind, raw.hash or b"", body, raw.written_ms, raw.chain or b"")

    def raw(self) -> RawFrame:
        """The stored form of a frame held in memory (an archived one, say)."""
        body = self.body.encode("utf-8", "surrogatepass")
        return RawFrame(
            self.seq,
            "text",
            self.kind.encode("utf-8", "surrogatepass"),
            "blob",
            self.hash,
            "text",
            body,
            "integer",
            self.written_ms,
            "blob",
            self.chain,
        )


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


class CorruptFrame(JournalError, Unavailable):
    """A read met a damaged frame: 503 `corrupt_frame` naming the seq, never a 500.

    Healthy frames stay readable: only a request whose range includes this seq
    fails (see docs/operations/runbooks/corruption.md).
    """

    code = "corrupt_frame"

    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(
            f"journal frame {seq} is damaged ({problem}); run `stemedb verify` "
            f"({CORRUPTION_RUNBOOK})",
            seq,
        )
        self.details = [{"field": "seq", "problem": f"frame {seq}: {problem}"}]


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


def _read_raw(conn: apsw.Connection, seq: int) -> RawFrame | None:
    try:
        rows = fetchall(conn, f"{SELECT_FRAMES} WHERE seq = ?", (seq,))
    except apsw.Error as exc:
        raise JournalError(f"frame {seq}: cannot be read ({_what(exc)})", seq) from None
    return frame_check.raw_from_row(rows[0]) if rows else None


def _is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, apsw.CorruptError | apsw.NotADBError)


def _what(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def check_header(conn: apsw.Connection) -> dict[str, object]:
    """Return the parsed header or raise JournalError naming what is wrong."""
    raw = _read_raw(conn, 0)
    if raw is None:
        raise JournalError("frame 0: journal header frame (seq 0) is missing", 0)
    try:
        header = frame_check.parse_body((raw.body or b"").decode("utf-8"))
    except (ValueError, RecursionError):
        raise JournalError("frame 0: journal header frame is not JSON", 0) from None
    kind_ok = raw.kind_type == "text" and raw.kind == b"header"
    if not kind_ok or not isinstance(header, dict) or header.get("format") != HEADER_FORMAT:
        raise JournalError(
            f"frame 0: journal header has unknown format (want {HEADER_FORMAT!r})", 0
        )
    if header.get("version") != HEADER_VERSION:
        raise JournalError(
            f"frame 0: journal header version {header.get('version')!r} is not supported "
            f"(this build reads version {HEADER_VERSION})",
            0,
        )
    problem = frame_check.problem(raw, None)
    if problem is not None:
        raise JournalError(f"frame 0: {problem}", 0)
    return header


def read_head(conn: apsw.Connection) -> Head | None:
    rows = fetchall(conn, "SELECT seq, CAST(chain AS BLOB) FROM journal ORDER BY seq DESC LIMIT 1")
    if not rows:
        return None
    chain = rows[0][1]
    return Head(int(rows[0][0]), chain if isinstance(chain, bytes) else b"")


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


def iter_raw(
    conn: apsw.Connection, after: int = -1, until: int | None = None, batch: int = 2000
) -> Iterator[RawFrame]:
    """Stored frames after `after` in seq order, in bounded chunks (constant memory).

    A read that fails (a damaged page, a file cut short) raises JournalError naming
    the first frame not read.
    """
    cursor = after
    bound = "" if until is None else " AND seq <= ?"
    sql = f"{SELECT_FRAMES} WHERE seq > ?{bound} ORDER BY seq LIMIT ?"
    while True:
        params = (cursor, batch) if until is None else (cursor, until, batch)
        got = 0
        try:
            for row in conn.execute(sql, params):
                raw = frame_check.raw_from_row(row)
                if raw.seq <= cursor:  # `seq > cursor ORDER BY seq` went backwards
                    raise JournalError(
                        f"frame {cursor + 1} cannot be read: SQLite returned seq {raw.seq} "
                        f"after {cursor} (a corrupt page)",
                        cursor + 1,
                    )
                got += 1
                cursor = raw.seq
                yield raw
        except apsw.Error as exc:
            seq = cursor + 1
            where = "SQLite reports a corrupt page" if _is_corrupt(exc) else "read failed"
            raise JournalError(f"frame {seq} cannot be read: {where} ({_what(exc)})", seq) from None
        if got < batch:
            return


def iter_frames(
    conn: apsw.Connection, after: int = -1, until: int | None = None, batch: int = 2000
) -> Iterator[Frame]:
    """Stream frames in seq order in bounded chunks (constant memory).

    Raises CorruptFrame naming the seq of a frame whose columns are damaged.
    """
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


def checked_frames(
    conn: apsw.Connection, after: int = -1, until: int | None = None, batch: int = 2000
) -> Iterator[Frame]:
    """`iter_frames` for readers that hand frames out (feed, export): each frame's
    columns, hash and body (a record of the kind its `kind` column says) are checked
    first, so a relabelled or damaged frame raises CorruptFrame instead of being
    shown as something it is not. The chain is `verify`'s job."""
    frames = iter_raw(conn, after, until, batch)
    while True:
        try:
            raw = next(frames)
        except StopIteration:
            return
        except CorruptFrame:
            raise
        except JournalError as exc:  # a page SQLite cannot read: the same 503, by seq
            seq = exc.seq if exc.seq is not None else after + 1
            raise CorruptFrame(seq, str(exc).removeprefix(f"frame {seq} ")) from None
        problem = frame_check.problem(raw, None, link=False, strict=False)
        if problem is not None:
            raise CorruptFrame(raw.seq, problem)
        yield Frame.from_raw(raw)


def chain_before(conn: apsw.Connection, seq: int) -> bytes:
    if seq <= 0:
        return ZERO_CHAIN
    raw = _read_raw(conn, seq - 1)
    if raw is None:
        raise JournalError(f"journal frame {seq - 1} is missing", seq - 1)
    return raw.chain or b""


def verify_frames(
    frames: Iterable[Frame | RawFrame], previous_chain: bytes, expect_seq: int
) -> int:
    """Check every column of each frame (frame_check) and the chain; return the count.

    `previous_chain` is the stored chain of frame expect_seq-1. Raises JournalError
    naming the first bad seq, in the words of the forensics query.
    """
    previous: RawFrame | None = RawFrame(
        expect_seq - 1, "text", b"", "blob", b"", "text", b"", "integer", 0, "blob", previous_chain
    )
    checked = 0
    for item in frames:
        raw = item.raw() if isinstance(item, Frame) else item
        if raw.seq < expect_seq and checked:  # a scan in seq order went backwards
            raise JournalError(
                f"frame {expect_seq} cannot be read: SQLite returned seq {raw.seq} after "
                f"{expect_seq - 1} (a corrupt page)",
                expect_seq,
            )
        if raw.seq != expect_seq:
            previous = None  # a hole (or a repeat): the frame has no predecessor
        problem = frame_check.problem(raw, previous)
        if problem is not None:
            raise JournalError(f"frame {raw.seq}: {problem}", raw.seq)
        previous = raw
        expect_seq = raw.seq + 1
        checked += 1
    return checked


def verify_range(conn: apsw.Connection, first: int, last: int | None = None) -> int:
    """Verify frames first..last (inclusive; None = to the head).

    Only JournalError escapes (naming the seq): the start-up tail check and
    `doctor` call this and must turn any damage into one runbook line.
    """
    first = max(first, 0)
    try:
        return verify_frames(
            iter_raw(conn, after=first - 1, until=last), chain_before(conn, first), first
        )
    except JournalError:
        raise
    except Exception as exc:  # a checker must name the frame, never crash
        raise JournalError(f"frame check failed near seq {first}: {_what(exc)}", first) from None


def verify_all(conn: apsw.Connection, progress: Any = None) -> int:
    """The whole journal, exactly as strict as docs/forensics.md's query."""
    try:
        rows = fetchall(conn, "SELECT min(seq) FROM journal")
    except apsw.Error as exc:
        raise JournalError(f"frame 0: cannot be read ({_what(exc)})", 0) from None
    low = rows[0][0]
    if low is not None and int(low) < 0:
        raise JournalError(f"frame {low}: seq below 0", int(low))
    check_header(conn)
    frames: Iterator[RawFrame] = iter_raw(conn)
    if progress is not None:
        frames = _counting(frames, progress)
    return verify_frames(frames, ZERO_CHAIN, 0)


def _counting(frames: Iterator[RawFrame], progress: Any) -> Iterator[RawFrame]:
    for frame in frames:
        progress(1)
        yield frame
