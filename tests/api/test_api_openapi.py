"""The generated OpenAPI 3.1 document is valid and matches the routes; /docs is self-contained."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import falcon
import falcon.testing
from openapi_spec_validator import validate
from pydantic import BaseModel, Field

from stemedb.api.openapi import build_openapi
from stemedb.api.routing import Route

Client = Callable[..., falcon.testing.TestClient]


class Tier(StrEnum):
    regulatory = "Regulatory"
    clinical = "Clinical"


class Source(BaseModel):
    uri: str
    tier: Tier


class Claim(BaseModel):
    subject: str = Field(description="concept path")
    confidence: float = Field(ge=0, le=1)
    sources: list[Source] = []
    parent: Claim | None = None  # recursive


class WriteResult(BaseModel):
    hash: str
    seq: int
    status: str


class QueryParams(BaseModel):
    subject: str = Field(description="concept path")
    lens: str | None = None
    tier: Tier | None = None
    limit: int = Field(default=100, le=1000)


class Page(BaseModel):
    claims: list[Claim]
    next_cursor: str | None


def noop(req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
    resp.media = {}


SAMPLE = [
    Route(
        "POST",
        "/v1/assert",
        noop,
        "Assert one claim",
        tag="writes",
        request_model=Claim,
        responses={201: WriteResult, 200: WriteResult, 404: None},
        auth="write",
    ),
    Route(
        "POST",
        "/v1/assert/batch",
        noop,
        "Batch",
        tag="writes",
        request_model=Claim,
        content_types=("application/json", "application/x-ndjson"),
        body_limit_factor=32,
        auth="write",
    ),
    Route(
        "GET",
        "/v1/query",
        noop,
        "Query",
        tag="reads",
        query_model=QueryParams,
        responses={200: Page},
    ),
    Route(
        "GET", "/v1/assertions/{hash}", noop, "One", tag="reads", responses={200: Claim, 404: None}
    ),
    Route("GET", "/v1/aliases/{path:path}", noop, "Aliases", tag="reads"),
    Route("GET", "/v1/health", noop, "Health", tag="operations", auth="public"),
]


def test_document_validates_as_openapi_31() -> None:
    spec = build_openapi(SAMPLE, "1.2.3")
    validate(spec)
    assert spec["openapi"].startswith("3.1") and spec["info"]["version"] == "1.2.3"


def test_defs_are_hoisted_into_components() -> None:
    spec = build_openapi(SAMPLE, "1")
    text = json.dumps(spec)
    assert "$defs" not in text
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text))
    assert refs <= set(spec["components"]["schemas"])
    assert {"Source", "Tier", "WriteResult", "ErrorResponse"} <= refs


def test_query_model_becomes_parameters_and_path_params_are_listed() -> None:
    spec = build_openapi(SAMPLE, "1")
    params = {
        p.get("name"): p for p in spec["paths"]["/v1/query"]["get"]["parameters"] if "name" in p
    }
    assert params["subject"]["required"] and params["subject"]["in"] == "query"
    assert params["subject"]["description"] == "concept path"
    assert not params["limit"]["required"] and params["limit"]["schema"]["maximum"] == 1000
    one = spec["paths"]["/v1/assertions/{hash}"]["get"]["parameters"]
    assert {"name": "hash", "in": "path", "required": True, "schema": {"type": "string"}} in one
    assert "/v1/aliases/{path}" in spec["paths"]  # converter stripped


def test_every_error_response_references_the_error_schema_and_request_id() -> None:
    spec = build_openapi(SAMPLE, "1")
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert {"$ref": "#/components/parameters/X-Request-Id"} in op["parameters"]
            assert "500" in op["responses"], (method, path)
            for status, response in op["responses"].items():
                assert "X-Request-Id" in response["headers"]
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
    assert_op = spec["paths"]["/v1/assert"]["post"]
    assert {"400", "401", "403", "404", "413", "415", "429"} <= set(assert_op["responses"])
    assert assert_op["security"] == [{"ApiKey": []}]
    assert spec["paths"]["/v1/health"]["get"]["security"] == []


def test_request_bodies_list_each_accepted_media_type() -> None:
    spec = build_openapi(SAMPLE, "1")
    content = spec["paths"]["/v1/assert/batch"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-ndjson"}
    created = spec["paths"]["/v1/assert"]["post"]["responses"]["201"]["content"]
    assert created["application/json"]["schema"] == {"$ref": "#/components/schemas/WriteResult"}


def test_operation_ids_are_unique() -> None:
    spec = build_openapi(SAMPLE, "1")
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_app_serves_its_own_document_including_meta_routes(make_client: Client) -> None:
    client = make_client(SAMPLE)
    result = client.simulate_get("/openapi.json")
    assert result.status_code == 200
    validate(result.json)
    assert {"/v1/assert", "/metrics", "/openapi.json", "/docs"} <= set(result.json["paths"])
    without_meter = make_client(SAMPLE, meter_enabled=False).simulate_get("/openapi.json").json
    assert "/metrics" not in without_meter["paths"]


def test_docs_page_is_self_contained(make_client: Client) -> None:
    client = make_client(SAMPLE)
    page = client.simulate_get("/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "/docs/docs.js" in page.text and "/docs/docs.css" in page.text
    assert not re.search(r"(src|href)=\"https?://", page.text)  # no CDN
    script = client.simulate_get("/docs/docs.js")
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert "/openapi.json" in script.text and "http://" not in script.text
    assert client.simulate_get("/docs/docs.css").status_code == 200
    assert client.simulate_get("/docs/secret.py").status_code == 404
    assert client.simulate_get("/docs/..%2Fapp.py").status_code == 404
