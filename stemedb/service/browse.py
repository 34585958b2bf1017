"""Reads that are not lens resolution: one record, lineage, catalogue, feed, export."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from stemedb import admission
from stemedb.canonical import canonical_json
from stemedb.config import Settings
from stemedb.errors import InvalidRequest, NotFound, RateLimited
from stemedb.paths import normalise_path
from stemedb.records import RECORD_KINDS
from stemedb.service.export_guard import CorruptGuard
from stemedb.store import Store, digests
from stemedb.store import quarantine as store_quarantine
from stemedb.store import reads as store_reads

LONG_POLL_RETRY_S = 1  # a poll over the long-poll cap: poll again after this long
EXPORT_RETRY_S = 5.0  # an export over the export cap: Retry-After
EXPORT_CHUNK = 500  # frames per chunk (one short read transaction each)
CSV_COLUMNS = (
    "hash",
    "seq",
    "subject",
    "predicate",
    "object_type",
    "value",
    "confidence",
    "source_class",
    "source",
    "source_hash",
    "lifecycle",
    "parent_hash",
    "epoch",
    "timestamp",
    "agent_id",
    "written_at",
)


def parse_hash(value: str, field: str = "hash") -> bytes:
    text = value.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidRequest.field(field, "must be 64 hex characters")
    return bytes.fromhex(text)


def parse_kinds(value: str | None, field: str = "kinds") -> frozenset[str] | None:
    if not value:
        return None
    kinds = frozenset(k.strip().lower() for k in value.split(",") if k.strip())
    unknown = kinds - set(RECORD_KINDS)
    if unknown:
        raise InvalidRequest.field(
            field, f"unknown kind {sorted(unknown)[0]!r}; expected {', '.join(RECORD_KINDS)}"
        )
    return kinds


def _csv_value(value: Any) -> str:
    """Text as is; numbers and booleans in their JSON form (`true`, `1e-7`)."""
    return value if isinstance(value, str) else canonical_json(value)


def _unknown(conn: Any, hash_text: str) -> NotFound:
    """404 for a hash with no assertion; a journalled replay (data-model.md §7) says
    which record it repeats: `replay_of <hash>`."""
    replay = digests.replay_of(conn, parse_hash(hash_text))
    if replay is None:
        return NotFound(f"no assertion {hash_text}", [{"field": "hash", "problem": "unknown"}])
    first = replay.hash.hex()
    return NotFound(
        f"{hash_text} is a replay of record {first} (seq {replay.seq}): kept in the journal,"
        " not counted (data-model.md §7)",
        [{"field": "hash", "problem": f"replay_of {first}"}],
    )


class BrowseService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._new_frames = threading.Condition()
        settings = getattr(store, "settings", None) or Settings()
        # Long polls and exports hold a worker thread while they wait or stream:
        # each kind may hold only its share of the pool (see admission.Lane).
        self.long_polls = admission.Lane("long_poll", settings.long_poll_limit)
        self.exports = admission.Lane("export", settings.export_limit)

    def notify_commit(self) -> None:
        """Wake long-polling feed readers after a commit."""
        with self._new_frames:
            self._new_frames.notify_all()

    def assertion(self, hash_text: str) -> dict[str, Any]:
        with self.store.reader() as conn:
            found = store_reads.assertion_by_hash(conn, parse_hash(hash_text))
            if found is None:
                raise _unknown(conn, hash_text)
        return found

    def trace(self, hash_text: str, depth: int) -> dict[str, Any]:
        target = parse_hash(hash_text)
        with self.store.reader() as conn:
            assertion = store_reads.assertion_by_hash(conn, target)
            if assertion is None:
                raise _unknown(conn, hash_text)
            ancestors: list[dict[str, Any]] = []
            parent = assertion.get("parent_hash")
            seen = {assertion["hash"]}
            while parent and len(ancestors) < depth and parent not in seen:
                seen.add(parent)
                found = store_reads.assertion_by_hash(conn, bytes.fromhex(parent))
                if found is None:
                    break
                ancestors.append(found)
                parent = found.get("parent_hash")
            source_hash = assertion.get("source_hash")
            return {
                "assertion": assertion,
                "ancestors": ancestors,
                "children": store_reads.children_of(conn, target),
                "supersessions": store_reads.supersessions_of(conn, target),
                "votes": store_reads.vote_summary(conn, target),
                "same_source": store_reads.same_source(conn, bytes.fromhex(source_hash), target)
                if source_hash
                else [],
                **store_quarantine.trace_notes(conn, target),  # issue 19: held? repeated?
            }

    def concepts(self, prefix: str | None) -> dict[str, Any]:
        path = normalise_path(prefix, "prefix") if prefix else None
        with self.store.reader() as conn:
            return {"prefix": path, "children": store_reads.concepts(conn, path)}

    def aliases(self, path_text: str) -> dict[str, Any]:
        path = normalise_path(path_text, "path")
        with self.store.reader() as conn:
            canonical = store_reads.resolve_alias(conn, path) or path
            return {
                "path": path,
                "canonical": canonical,
                "aliases": store_reads.aliases_of(conn, canonical),
            }

    def epochs(self) -> dict[str, Any]:
        with self.store.reader() as conn:
            return {"epochs": store_reads.epochs(conn)}

    def epoch(self, epoch_text: str) -> dict[str, Any]:
        with self.store.reader() as conn:
            found = store_reads.epochs(conn, parse_hash(epoch_text, "id"))
        if not found:
            raise NotFound(f"no epoch {epoch_text}", [{"field": "id", "problem": "unknown"}])
        return found[0]

    def feed(self, after: int, limit: int, kinds_text: str | None, wait_s: float) -> dict[str, Any]:
        """Frames after `after`; with `wait_s`, long-poll until one exists or time is up.

        Only `long_polls.limit` polls wait at once. Over that cap a poll answers at
        once with what there is (maybe nothing) plus `retry_after`, so that followers
        can never take every worker thread from writes and reads (the client's
        `follow()` sleeps that long before it polls again).
        """
        kinds = parse_kinds(kinds_text)
        frames, next_after = self._feed_once(after, limit, kinds)
        capped = False
        if not frames and wait_s > 0:
            if self.long_polls.try_enter():
                try:
                    frames, next_after = self._wait_for_frames(next_after, limit, kinds, wait_s)
                finally:
                    self.long_polls.leave()
            else:
                capped = True
        body: dict[str, Any] = {
            "frames": [
                {
                    "seq": f.seq,
                    "kind": f.kind,
                    "hash": f.hash.hex(),
                    "written_ms": f.written_ms,
                    "record": json.loads(f.body),
                }
                for f in frames
            ],
            "next_after": next_after,
        }
        if capped:
            body["retry_after"] = LONG_POLL_RETRY_S
        return body

    def _wait_for_frames(
        self, after: int, limit: int, kinds: frozenset[str] | None, wait_s: float
    ) -> tuple[list[Any], int]:
        frames: list[Any] = []
        next_after = after
        deadline = time.monotonic() + wait_s
        while not frames and (remaining := deadline - time.monotonic()) > 0:
            # Woken by every commit (audit rows included): re-check the head and
            # keep waiting until a new frame exists or the deadline passes.
            with admission.blocking(), self._new_frames:  # slot freed before the lock
                if self.store.current_head.seq <= next_after:
                    self._new_frames.wait(remaining)
            frames, next_after = self._feed_once(next_after, limit, kinds)
        return frames, next_after

    def _feed_once(
        self, after: int, limit: int, kinds: frozenset[str] | None
    ) -> tuple[list[Any], int]:
        with self.store.reader() as conn:
            return store_reads.feed(conn, after, limit, kinds)

    def export(self, fmt: str, kinds_text: str | None, after: int) -> Iterator[bytes]:
        """Stream every matching record up to the head as of now; one line per record.

        Read in seq-ranged chunks, each in its own short read transaction: a client
        that stops reading holds no snapshot (which would pin the WAL), only its
        connection's bounded send buffer until the send timeout closes it. The
        upper seq is fixed at the start, so the export is gap-free by seq and
        consistent per chunk; the journal is append-only, so that is the same set
        of records one snapshot would give.
        """
        kinds = parse_kinds(kinds_text)
        if fmt == "csv" and kinds not in (None, frozenset({"assertion"})):
            raise InvalidRequest.field("kinds", "csv export holds assertions only")
        if not self.exports.try_enter():
            raise RateLimited(
                f"{self.exports.limit} exports are already streaming (STEMEDB_EXPORTS); "
                "retry later",
                EXPORT_RETRY_S,
                code="too_many_exports",
            )
        try:
            until = self.store.current_head.seq
        except BaseException:
            self.exports.leave()
            raise
        if fmt == "csv":
            lines = self._export_csv(after, until)
        else:
            lines = self._export_ndjson(kinds, after, until)
        try:  # a damaged frame: 503 if in the first chunk, else a last error line
            guarded = CorruptGuard(lines, fmt)
        except BaseException:
            self.exports.leave()
            raise
        return _LaneStream(guarded, self.exports)

    def _chunks(self, after: int, until: int, kinds: frozenset[str] | None) -> Iterator[list[Any]]:
        """Frames in (`after`, `until`] in chunks; no read transaction spans a yield."""
        cursor = after
        while cursor < until:
            with self.store.reader() as conn:
                frames, cursor = store_reads.export_chunk(conn, cursor, until, kinds, EXPORT_CHUNK)
            if frames:
                yield frames

    def _export_ndjson(
        self, kinds: frozenset[str] | None, after: int, until: int
    ) -> Iterator[bytes]:
        for frames in self._chunks(after, until, kinds):
            yield b"".join(
                frame.body.encode("utf-8") + b"\n" for frame in frames if frame.kind != "header"
            )

    def _export_csv(self, after: int, until: int) -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue().encode("utf-8")
        for frames in self._chunks(after, until, frozenset({"assertion"})):
            buffer.seek(0)
            buffer.truncate()
            for frame in frames:
                writer.writerow(_csv_row(frame))
            yield buffer.getvalue().encode("utf-8")


def _csv_row(frame: Any) -> tuple[Any, ...]:
    record = json.loads(frame.body)
    signatures = record.get("signatures") or []
    return (
        frame.hash.hex(),
        frame.seq,
        record["subject"],
        record["predicate"],
        record["object"]["type"],
        _csv_value(record["object"]["value"]),
        canonical_json(record["confidence"]),
        record["source_class"],
        record.get("source", ""),
        record.get("source_hash", ""),
        record["lifecycle"],
        record.get("parent_hash", ""),
        record.get("epoch", ""),
        record["timestamp"],
        signatures[0]["agent_id"] if signatures else "",
        frame.written_ms,
    )


class _LaneStream:
    """A response body that gives its export lane place back exactly once: when
    waitress closes it (finished, failed, or the client went away), even if it
    was never iterated."""

    def __init__(self, lines: Iterator[bytes], lane: admission.Lane) -> None:
        self._lines = lines
        self._lane: admission.Lane | None = lane

    def __iter__(self) -> _LaneStream:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._lines)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        close = getattr(self._lines, "close", None)
        if close is not None:
            close()
        lane, self._lane = self._lane, None
        if lane is not None:
            lane.leave()

    def __del__(self) -> None:  # a response dropped before waitress saw it
        self.close()
