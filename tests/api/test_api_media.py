"""Strict JSON parsing, compact output, NDJSON streaming, and parse_body/parse_query."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import falcon
import falcon.testing
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from stemedb.api.media import (
    MAX_DEPTH,
    dumps,
    dumps_bytes,
    iter_ndjson,
    loads_strict,
    parse_body,
    parse_query,
)
from stemedb.api.routing import Route
from stemedb.errors import InvalidJson

Client = Callable[..., falcon.testing.TestClient]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"x": {"b": 1, "b": 1}}', "duplicate key 'b'"),
        ('{"a": NaN}', "NaN"),
        ("[Infinity]", "Infinity"),
        ("[-Infinity]", "-Infinity"),
        ('{"a": 1,\n "b": }', "line 2 column"),
        ("", "empty"),
        ("   ", "empty"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}"),
        ("[" * 100000, "deeper than"),
        ("1" * 5000, "invalid JSON"),  # more digits than Python converts
    ],
)
def test_loads_strict_rejects_with_a_named_problem(text: str, problem: str) -> None:
    with pytest.raises(InvalidJson) as info:
        loads_strict(text)
    assert problem in info.value.message


def test_loads_strict_accepts_the_maximum_depth() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads_strict(text) is not None


def test_loads_strict_limits_string_and_key_length() -> None:
    assert loads_strict(json.dumps({"k": "x" * 10}), max_string=10) == {"k": "x" * 10}
    with pytest.raises(InvalidJson, match="longer than 10"):
        loads_strict(json.dumps({"k": "x" * 11}), max_string=10)
    with pytest.raises(InvalidJson, match="key is longer"):
        loads_strict(json.dumps({"k" * 11: 1}), max_string=10)


def test_loads_strict_rejects_invalid_utf8() -> None:
    with pytest.raises(InvalidJson, match="UTF-8"):
        loads_strict(b'{"a": "\xff"}')


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=20,
    )
)
def test_dumps_then_loads_strict_round_trips(value: Any) -> None:
    assert loads_strict(dumps(value)) == value


def test_dumps_is_compact_utf8_and_refuses_nan() -> None:
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    with pytest.raises(ValueError):
        dumps({"a": float("nan")})


def test_iter_ndjson_reports_bad_lines_in_place_and_skips_blank_lines() -> None:
    stream = io.BytesIO(b'{"a":1}\n\n{"a":\n[1,2]\n{"a":1,"a":2}')
    out = list(iter_ndjson(stream))
    assert [n for n, _ in out] == [1, 3, 4, 5]
    assert out[0][1] == {"a": 1} and out[2][1] == [1, 2]
    assert isinstance(out[1][1], InvalidJson) and out[1][1].message.startswith("line 3:")
    assert isinstance(out[3][1], InvalidJson) and "duplicate key" in out[3][1].message


def test_iter_ndjson_bounds_a_line_and_keeps_counting() -> None:
    stream = io.BytesIO(b'"' + b"x" * 100 + b'"\n{"ok":true}\n')
    out = list(iter_ndjson(stream, max_line_bytes=50))
    assert isinstance(out[0][1], InvalidJson) and "longer than 50" in out[0][1].message
    assert out[1] == (2, {"ok": True})


class Claim(BaseModel):
    subject: str
    confidence: float = Field(ge=0, le=1)


class Page(BaseModel):
    limit: int = Field(default=100, le=1000)
    prefix: bool = False


def _echo_routes() -> list[Route]:
    def body(req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = parse_body(req, Claim).model_dump()

    def query(req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = parse_query(req, Page).model_dump()

    return [
        Route("POST", "/v1/claim", body, request_model=Claim),
        Route("GET", "/v1/page", query, query_model=Page),
    ]


def test_parse_body_validates_and_names_the_field(make_client: Client) -> None:
    client = make_client(_echo_routes())
    ok = client.simulate_post("/v1/claim", json={"subject": "a/b", "confidence": 0.5})
    assert ok.json == {"subject": "a/b", "confidence": 0.5}
    bad = client.simulate_post("/v1/claim", json={"subject": "a/b", "confidence": 1.7})
    assert bad.status_code == 400
    assert bad.json["error"]["code"] == "invalid_request"
    assert bad.json["error"]["details"][0]["field"] == "confidence"


def test_malformed_body_is_invalid_json_with_position(make_client: Client) -> None:
    client = make_client(_echo_routes())
    result = client.simulate_post(
        "/v1/claim", body='{"subject": "a",}', headers={"Content-Type": "application/json"}
    )
    assert result.status_code == 400
    assert result.json["error"]["code"] == "invalid_json"
    assert "line 1 column" in result.json["error"]["message"]
    dup = client.simulate_post(
        "/v1/claim", body='{"subject":"a","subject":"b"}', content_type="application/json"
    )
    assert "duplicate key 'subject'" in dup.json["error"]["message"]


def test_parse_query_coerces_and_validates(make_client: Client) -> None:
    client = make_client(_echo_routes())
    assert client.simulate_get("/v1/page", query_string="limit=5&prefix=true").json == {
        "limit": 5,
        "prefix": True,
    }
    bad = client.simulate_get("/v1/page", query_string="limit=5000")
    assert bad.status_code == 400 and bad.json["error"]["details"][0]["field"] == "limit"


def test_responses_are_compact_json(make_client: Client) -> None:
    def handler(req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"name": "Sémaglutide", "n": [1, 2]}

    result = make_client([Route("GET", "/v1/x", handler)]).simulate_get("/v1/x")
    assert result.content == '{"name":"Sémaglutide","n":[1,2]}'.encode()


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 16])
def test_iter_ndjson_lines_survive_any_chunking(chunk: int) -> None:
    from stemedb.http import wire as media

    body = b'{"a":1}\n' + b'"' + b"y" * 60 + b'"\n' + b"[2]\n\n" + b'"' + b"z" * 40 + b'"'
    lines = list(media._lines(io.BytesIO(body), max_line_bytes=50, chunk_bytes=chunk))
    assert lines == [b'{"a":1}\n', None, b"[2]\n", b"\n", b'"' + b"z" * 40 + b'"']


def test_iter_ndjson_reads_every_line_of_a_falcon_bounded_stream() -> None:
    # Falcon's BoundedStream.readline() miscounts; a reader using it would stop after line 1.
    body = b"".join(b'{"n":%d}\n' % i for i in range(1000))
    stream = falcon.stream.BoundedStream(io.BytesIO(body), len(body))
    values = [value for _, value in iter_ndjson(stream)]
    assert values == [{"n": i} for i in range(1000)]


# ---- response encoding: orjson with a standard-library fallback ----------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_json_values)
def test_response_bytes_are_the_standard_librarys_document(value: object) -> None:
    encoded = dumps_bytes(value)
    assert json.loads(encoded) == json.loads(dumps(value))


def test_response_bytes_are_byte_identical_for_a_typical_answer() -> None:
    answer = {
        "lens": "authority",
        "results": [{"subject": "drugs/semaglutide", "score": 0.8123456789, "why": "tier 2 — ü"}],
        "next_cursor": None,
        "count": 3,
    }
    assert dumps_bytes(answer) == dumps(answer).encode("utf-8")


def test_an_integer_beyond_64_bits_falls_back_to_the_standard_library() -> None:
    assert dumps_bytes({"n": 2**70}) == b'{"n":1180591620717411303424}'
