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
from stemedb.errors import InvalidRequest, NotFound
from stemedb.paths import normalise_path
from stemedb.records import RECORD_KINDS
from stemedb.store import Store
from stemedb.store import reads as store_reads

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


class BrowseService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._new_frames = threading.Condition()

    def notify_commit(self) -> None:
        """Wake long-polling feed readers after a commit."""
        with self._new_frames:
            self._new_frames.notify_all()

    def assertion(self, hash_text: str) -> dict[str, Any]:
        with self.store.reader() as conn:
            found = store_reads.assertion_by_hash(conn, parse_hash(hash_text))
        if found is None:
            raise NotFound(f"no assertion {hash_text}", [{"field": "hash", "problem": "unknown"}])
        return found

    def trace(self, hash_text: str, depth: int) -> dict[str, Any]:
        target = parse_hash(hash_text)
        with self.store.reader() as conn:
            assertion = store_reads.assertion_by_hash(conn, target)
            if assertion is None:
                raise NotFound(
                    f"no assertion {hash_text}", [{"field": "hash", "problem": "unknown"}]
                )
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
        kinds = parse_kinds(kinds_text)
        frames, next_after = self._feed_once(after, limit, kinds)
        deadline = time.monotonic() + wait_s
        while not frames and (remaining := deadline - time.monotonic()) > 0:
            # Woken by every commit (audit rows included): re-check the head and
            # keep waiting until a new frame exists or the deadline passes.
            with admission.blocking(), self._new_frames:  # slot freed before the lock
                if self.store.current_head.seq <= next_after:
                    self._new_frames.wait(remaining)
            frames, next_after = self._feed_once(next_after, limit, kinds)
        return {
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

    def _feed_once(
        self, after: int, limit: int, kinds: frozenset[str] | None
    ) -> tuple[list[Any], int]:
        with self.store.reader() as conn:
            return store_reads.feed(conn, after, limit, kinds)

    def export(self, fmt: str, kinds_text: str | None, after: int) -> Iterator[bytes]:
        """Stream every matching record; constant memory, one line per record."""
        kinds = parse_kinds(kinds_text)
        if fmt == "csv":
            if kinds not in (None, frozenset({"assertion"})):
                raise InvalidRequest.field("kinds", "csv export holds assertions only")
            return self._export_csv(after)
        return self._export_ndjson(kinds, after)

    def _export_ndjson(self, kinds: frozenset[str] | None, after: int) -> Iterator[bytes]:
        with self.store.reader() as conn:
            for frame in store_reads.export_frames(conn, after, kinds):
                if frame.kind != "header":
                    yield frame.body.encode("utf-8") + b"\n"

    def _export_csv(self, after: int) -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue().encode("utf-8")
        with self.store.reader() as conn:
            for frame in store_reads.export_frames(conn, after, frozenset({"assertion"})):
                record = json.loads(frame.body)
                signatures = record.get("signatures") or []
                buffer.seek(0)
                buffer.truncate()
                writer.writerow(
                    (
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
                )
                yield buffer.getvalue().encode("utf-8")
