"""Looking at a request body before the handler does, without consuming it.

The security middleware runs before the body guard (so an unauthenticated
client is refused before its body is looked at). When it does need the body
(a scoped key's subjects, the signer a quota is charged to) it reads a
bounded prefix and puts it back in front of the rest of the stream, so the
handler parses exactly the bytes the client sent. Bodies the guard will
refuse (too large, wrong media type) are not read here at all.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

import falcon

from stemedb.errors import InvalidJson
from stemedb.http.route import Route
from stemedb.http.wire import NDJSON, iter_ndjson, loads_strict, media_type

FIRST_RECORD_BYTES = (1 << 20) + 1024


class _Replay(io.RawIOBase):
    """`head` bytes, then whatever `rest` still holds."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._pos = 0
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos < len(self._head):
            n = min(len(buffer), len(self._head) - self._pos)
            buffer[:n] = self._head[self._pos : self._pos + n]
            self._pos += n
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def body_limit(route: Route, max_body_bytes: int) -> int:
    return max_body_bytes * route.body_limit_factor


def readable_body(req: falcon.Request, route: Route, max_body_bytes: int) -> bool:
    """True if the body guard will let this body through (so looking at it is safe)."""
    length = req.content_length
    if not length or req.method not in ("POST", "PUT", "PATCH"):
        return False
    if length > body_limit(route, max_body_bytes):
        return False
    return media_type(req.content_type) in route.content_types


def peek(req: falcon.Request, limit: int) -> bytes:
    """Up to `limit` bytes of the body, which stays readable from its first byte."""
    total = req.content_length or 0
    wanted = min(limit, total)
    head: bytes = getattr(req.context, "body_peek", None) or b""
    if len(head) >= wanted:
        return head[:limit]
    rest: Any = getattr(req.context, "body_rest", None) or req.stream
    chunks = [head]
    missing = wanted - len(head)
    while missing > 0:
        chunk = rest.read(missing)
        if not chunk:
            break
        chunks.append(chunk)
        missing -= len(chunk)
    head = b"".join(chunks)
    replay: Any = io.BytesIO(head) if len(head) >= total else io.BufferedReader(_Replay(head, rest))
    req.env["wsgi.input"] = req.stream = replay
    req.context.body_peek = head
    req.context.body_rest = rest
    return head[:limit]


def iter_records(
    req: falcon.Request, route: Route, max_body_bytes: int
) -> Iterator[tuple[int, Any]]:
    """Every record of the body as the handler will see it: (index, value).

    A JSON array (the batch route) yields its items; NDJSON yields one per
    non-blank line (a bad line as an InvalidJson value, keeping the index);
    any other JSON body is one record at index 0. Nothing is yielded for a
    body that is not valid JSON: the handler refuses it with a 400.
    """
    data = peek(req, body_limit(route, max_body_bytes))
    if media_type(req.content_type) == NDJSON:
        for index, (_, value) in enumerate(iter_ndjson(io.BytesIO(data))):
            yield index, value
        return
    try:
        value = loads_strict(data)
    except InvalidJson:
        return
    if route.body_limit_factor > 1 and isinstance(value, list):
        yield from enumerate(value)
    else:
        yield 0, value


def first_record(req: falcon.Request, route: Route) -> Any:
    """The first record of the body, read from a bounded prefix (None if unreadable)."""
    data = peek(req, FIRST_RECORD_BYTES)
    if media_type(req.content_type) == NDJSON:
        for _, value in iter_ndjson(io.BytesIO(data)):
            return None if isinstance(value, InvalidJson) else value
        return None
    text = data.decode("utf-8", errors="replace").lstrip()
    decoder = json.JSONDecoder()
    try:
        if text.startswith("[") and route.body_limit_factor > 1:
            inner = text[1:]
            first, _ = decoder.raw_decode(text, 1 + len(inner) - len(inner.lstrip()))
            return first
        value, _ = decoder.raw_decode(text)
        return value
    except (json.JSONDecodeError, RecursionError, ValueError):
        return None
