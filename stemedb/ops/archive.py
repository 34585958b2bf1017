"""`stemedb archive`: seal new journal frames into segment files and ship them.

A segment `journal-<first>-<last>.ndjson` holds one frame a line, exactly as
stored (seq, kind, hash, body, written_ms, chain), so a restore can re-check
every hash and chain link. The state is the segment names themselves: the
next run starts after the highest `last`, so archiving is incremental and a
rerun with nothing new writes nothing. Shipping (`STEMEDB_ARCHIVE_COMMAND`,
PostgreSQL's `%p`/`%f` convention) leaves `<segment>.done` after success, so a
later run retries only what never left the machine.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

from stemedb.ops.common import adopt_owner, fsync_dir, open_readonly
from stemedb.store import files, journal
from stemedb.store.journal import Frame, JournalError

SEGMENT = re.compile(r"^journal-(\d+)-(\d+)\.ndjson$")
SEQ_WIDTH = 16  # zero-padded so that `ls` lists segments in journal order
MAX_FRAMES_PER_SEGMENT = 100_000
SHIP_ATTEMPTS = 3
SHIP_BACKOFF_S = 1.0  # 1 s, then 2 s


class ArchiveError(Exception):
    """Archiving failed; `seq` names the frame when the journal itself is at fault."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


@dataclass(frozen=True)
class Segment:
    path: Path
    first: int
    last: int

    @property
    def done_marker(self) -> Path:
        return self.path.with_name(self.path.name + ".done")


@dataclass
class ArchiveResult:
    head_seq: int
    archived_before: int = -1
    sealed: list[Segment] = field(default_factory=list)
    shipped: list[Segment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "head_seq": self.head_seq,
            "sealed": [s.path.name for s in self.sealed],
            "frames_sealed": sum(s.last - s.first + 1 for s in self.sealed),
            "shipped": [s.path.name for s in self.shipped],
            "last_archived_seq": self.sealed[-1].last if self.sealed else self.archived_before,
        }


# ---- segment files -----------------------------------------------------------


def segment_name(first: int, last: int) -> str:
    return f"journal-{first:0{SEQ_WIDTH}d}-{last:0{SEQ_WIDTH}d}.ndjson"


def list_segments(wal_dir: Path) -> list[Segment]:
    """Sealed segments in journal order (temporary files are ignored)."""
    try:
        names = os.listdir(wal_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        match = SEGMENT.match(name)
        if match:
            found.append(Segment(wal_dir / name, int(match.group(1)), int(match.group(2))))
    return sorted(found, key=lambda s: (s.first, s.last))


def last_archived_seq(wal_dir: Path) -> int:
    """Highest archived seq, -1 when nothing is archived yet."""
    return max((s.last for s in list_segments(wal_dir)), default=-1)


def frame_to_line(frame: Frame) -> str:
    return json.dumps(
        {
            "seq": frame.seq,
            "kind": frame.kind,
            "hash": frame.hash.hex(),
            "body": frame.body,
            "written_ms": frame.written_ms,
            "chain": frame.chain.hex(),
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def frame_from_line(line: str, where: str) -> Frame:
    try:
        item = json.loads(line)
        return Frame(
            int(item["seq"]),
            str(item["kind"]),
            bytes.fromhex(item["hash"]),
            str(item["body"]),
            int(item["written_ms"]),
            bytes.fromhex(item["chain"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{where}: not a journal frame ({exc})") from None


def read_segment(segment: Segment) -> Iterator[Frame]:
    with open(segment.path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield frame_from_line(line, f"{segment.path.name} line {number}")


def _last_frame(segment: Segment) -> Frame | None:
    last = None
    for last in read_segment(segment):  # noqa: B007 - segments are bounded in size
        pass
    return last


def _write_segment(wal_dir: Path, frames: list[Frame]) -> Segment:
    """Temp file, fsync, rename, fsync the directory: a segment is whole or absent."""
    first, last = frames[0].seq, frames[-1].seq
    final = wal_dir / segment_name(first, last)
    tmp = wal_dir / f".{final.name}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        for frame in frames:
            handle.write(frame_to_line(frame) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    adopt_owner(tmp, wal_dir)
    os.replace(tmp, final)
    fsync_dir(wal_dir)
    return Segment(final, first, last)


@contextmanager
def locked(wal_dir: Path) -> Iterator[None]:
    """One archiver at a time per WAL directory (the timer and a manual run could
    otherwise seal overlapping segments)."""
    wal_dir.mkdir(parents=True, exist_ok=True)
    path = wal_dir / ".archive.lock"
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o640)  # read-only is enough for flock
    try:
        adopt_owner(path, wal_dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiveError(f"another `stemedb archive` is running on {wal_dir}") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


# ---- sealing -----------------------------------------------------------------


def seal(
    db_path: Path, wal_dir: Path, *, max_frames: int = MAX_FRAMES_PER_SEGMENT
) -> ArchiveResult:
    """Write every frame after the last archived one into new segments."""
    wal_dir.mkdir(parents=True, exist_ok=True)
    segments = list_segments(wal_dir)
    after = segments[-1].last if segments else -1
    conn = open_readonly(db_path)
    try:
        files.begin_snapshot(conn)  # one snapshot: the head cannot move while we read
        head = journal.read_head(conn)
        if head is None:
            raise ArchiveError(f"{db_path} has an empty journal")
        result = ArchiveResult(head.seq, after)
        previous = _check_continuity(conn, segments, head.seq)
        expect = after + 1
        batch: list[Frame] = []
        for frame in journal.iter_frames(conn, after=after, until=head.seq):
            previous = _check_frame(frame, previous, expect)
            expect += 1
            batch.append(frame)
            if len(batch) >= max_frames:
                result.sealed.append(_write_segment(wal_dir, batch))
                batch = []
        if batch:
            result.sealed.append(_write_segment(wal_dir, batch))
        files.end_snapshot(conn)
    except apsw.Error as exc:
        raise ArchiveError(f"cannot read {db_path}: {exc}") from None
    finally:
        conn.close()
    return result


def _check_continuity(conn: apsw.Connection, segments: list[Segment], head_seq: int) -> bytes:
    """The chain value to continue from, after checking the archive is this journal's past.

    After a point-in-time restore the database continues a shorter history;
    the old segments belong to another timeline and must not be mixed in.
    """
    if not segments:
        return journal.ZERO_CHAIN
    last = _last_frame(segments[-1])
    if last is None or last.seq != segments[-1].last:
        raise ArchiveError(f"{segments[-1].path} is truncated or mislabelled")
    probe = min(last.seq, head_seq)
    stored = files.chain_at(conn, probe)
    archived_chain = last.chain if probe == last.seq else _archived_chain_at(segments, probe)
    if stored is None or bytes(stored) != archived_chain:
        raise ArchiveError(
            f"the archive in {segments[-1].path.parent} does not continue this database's "
            f"journal (chain differs at seq {probe}; after a restore to an earlier point, "
            "move the old segments aside or use a new STEMEDB_WAL_DIR)",
            probe,
        )
    if head_seq < last.seq:
        raise ArchiveError(
            f"the archive reaches seq {last.seq} but the database head is seq {head_seq} "
            "(restored to an earlier point? move the later segments aside)",
            head_seq,
        )
    return last.chain


def _archived_chain_at(segments: list[Segment], seq: int) -> bytes | None:
    for segment in segments:
        if segment.first <= seq <= segment.last:
            for frame in read_segment(segment):
                if frame.seq == seq:
                    return frame.chain
    return None


def _check_frame(frame: Frame, previous: bytes, expect: int) -> bytes:
    try:
        journal.verify_frames(iter([frame]), previous, expect)
    except JournalError as exc:
        raise ArchiveError(f"refusing to archive a damaged journal: {exc}", exc.seq) from None
    return frame.chain


# ---- shipping ----------------------------------------------------------------


def expand_command(template: str, path: Path) -> str:
    """`%p` = absolute path, `%f` = file name (both shell-quoted), `%%` = `%`."""
    values = {"p": shlex.quote(str(path.resolve())), "f": shlex.quote(path.name), "%": "%"}
    return re.sub(r"%([pf%])", lambda m: values[m.group(1)], template)


def ship(
    wal_dir: Path,
    command: str,
    *,
    attempts: int = SHIP_ATTEMPTS,
    backoff_s: float = SHIP_BACKOFF_S,
) -> list[Segment]:
    """Run `command` for every sealed segment without a `.done` marker, in order.

    Stops at the first segment that still fails after `attempts` tries (later
    segments wait, as with PostgreSQL's archiver) and raises ArchiveError.
    """
    shipped = []
    for segment in list_segments(wal_dir):
        if segment.done_marker.exists():
            continue
        cmd = expand_command(command, segment.path)
        last_error = ""
        for attempt in range(1, attempts + 1):
            proc = subprocess.run(
                cmd, shell=True, capture_output=True, text=True, check=False, cwd=wal_dir
            )
            if proc.returncode == 0:
                break
            last_error = (proc.stderr or proc.stdout).strip()[-500:]
            if attempt < attempts:
                time.sleep(backoff_s * 2 ** (attempt - 1))
        else:
            raise ArchiveError(
                f"archive command failed {attempts} times for {segment.path.name} "
                f"(exit {proc.returncode}): {last_error or 'no output'}"
            )
        with open(segment.done_marker, "w", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
            handle.flush()
            os.fsync(handle.fileno())
        adopt_owner(segment.done_marker, wal_dir)
        fsync_dir(wal_dir)
        shipped.append(segment)
    return shipped


def archive(
    db_path: Path,
    wal_dir: Path,
    command: str | None = None,
    *,
    backoff_s: float = SHIP_BACKOFF_S,
) -> ArchiveResult:
    """Seal, then ship (when a command is configured). Raises ArchiveError."""
    with locked(wal_dir):
        result = seal(db_path, wal_dir)
        if command:
            result.shipped = ship(wal_dir, command, backoff_s=backoff_s)
    return result


# ---- lag metric ----------------------------------------------------------------

_lag_cache: dict[Path, tuple[int, int]] = {}


def archive_lag(wal_dir: Path, head_seq: int) -> int:
    """Journal head minus the last archived seq (the `stemedb_archive_lag_frames` gauge).

    The directory listing is cached on its mtime: scrapes stay cheap.
    """
    try:
        stamp = wal_dir.stat().st_mtime_ns
    except OSError:
        return head_seq + 1
    cached = _lag_cache.get(wal_dir)
    if cached is None or cached[0] != stamp:
        cached = (stamp, last_archived_seq(wal_dir))
        _lag_cache[wal_dir] = cached
    return max(0, head_seq - cached[1])
