"""Strict JSON in, compact JSON out, and NDJSON streaming, for Falcon.

The wire format itself (strict parsing, NDJSON lines, compact output) is
stemedb.http.wire, shared with the security layer; this module adds Falcon's
media handler and the pydantic validation of bodies and query strings.
"""

from __future__ import annotations

from typing import Any, TypeVar

import falcon
import falcon.media
import pydantic
from falcon.typing import ReadableIO
from pydantic import BaseModel

from stemedb.api.errors import invalid_request_from
from stemedb.http.wire import MAX_DEPTH as MAX_DEPTH
from stemedb.http.wire import MAX_STRING_CHARS as MAX_STRING_CHARS
from stemedb.http.wire import NDJSON as NDJSON
from stemedb.http.wire import ByteReader as ByteReader
from stemedb.http.wire import dumps as dumps
from stemedb.http.wire import dumps_bytes as dumps_bytes
from stemedb.http.wire import iter_ndjson as iter_ndjson
from stemedb.http.wire import loads_strict as loads_strict
from stemedb.http.wire import media_type as media_type

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictJSONHandler(falcon.media.BaseHandler):
    """Falcon media handler for application/json using `loads_strict` / `dumps`."""

    def deserialize(
        self, stream: ReadableIO, content_type: str | None, content_length: int | None
    ) -> object:
        return loads_strict(stream.read())

    def serialize(self, media: object, content_type: str | None = None) -> bytes:
        return dumps_bytes(media)


def media_handlers() -> falcon.media.Handlers:
    handler = StrictJSONHandler()
    return falcon.media.Handlers({falcon.MEDIA_JSON: handler})


def parse_body(req: falcon.Request, model: type[ModelT]) -> ModelT:
    """The JSON body validated into `model`; InvalidJson / InvalidRequest name the problem."""
    return validate(model, req.get_media())


def parse_query(req: falcon.Request, model: type[ModelT]) -> ModelT:
    """Query-string parameters validated into `model` (repeated keys arrive as lists)."""
    return validate(model, dict(req.params))


def validate(model: type[ModelT], data: Any) -> ModelT:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise invalid_request_from(exc) from None
