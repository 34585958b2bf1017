"""OpenAPI 3.1 from the route table and the pydantic models the handlers use.

Generated, never hand-written, so the document cannot drift from the code:
request/response bodies are the models' JSON Schemas (3.1 is JSON Schema
2020-12), query models become parameters, and every 4xx/5xx references the
one error schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from stemedb.api.errors import ErrorResponse
from stemedb.api.routing import Route

REF = "#/components/schemas/{model}"
Mode = Literal["validation", "serialization"]


def _schemas(routes: Sequence[Route]) -> tuple[dict[tuple[Any, Mode], Any], dict[str, Any]]:
    """Every model once, with shared `$defs` hoisted into components and names deduplicated."""
    wanted: dict[tuple[type[BaseModel], Mode], None] = {(ErrorResponse, "serialization"): None}
    for route in routes:
        if route.request_model is not None:
            wanted[(route.request_model, "validation")] = None
        if route.query_model is not None:
            wanted[(route.query_model, "validation")] = None
        for model in route.responses.values():
            if model is not None:
                wanted[(model, "serialization")] = None
    refs, top = models_json_schema(list(wanted), ref_template=REF)
    return dict(refs), dict(top.get("$defs", {}))


def _component_name(ref: dict[str, Any]) -> str:
    return str(ref["$ref"]).rsplit("/", 1)[-1]


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k != "description"},
        }
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


def _operation_id(route: Route) -> str:
    if route.operation_id:
        return route.operation_id
    words = [w.strip("{}").split(":")[0] for w in route.template.split("/") if w]
    return "_".join([route.method.lower(), *(w.replace(".", "_").replace("-", "_") for w in words)])


def _responses(route: Route, refs: dict[tuple[Any, Mode], Any]) -> dict[str, Any]:
    statuses: dict[int, type[BaseModel] | None] = dict(route.responses)
    has_input = bool(route.request_model or route.query_model or route.path_params)
    implied = [500]
    if has_input:
        implied.append(400)
    if route.request_model is not None:
        implied += [413, 415]
    if route.auth != "public":
        implied += [401, 403, 429]
    for status in implied:
        statuses.setdefault(status, None)
    error_ref = refs[(ErrorResponse, "serialization")]
    out: dict[str, Any] = {}
    for status in sorted(statuses):
        model = statuses[status]
        entry: dict[str, Any] = {
            "description": HTTPStatus(status).phrase,
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
        }
        if status >= 400:
            entry["content"] = {"application/json": {"schema": error_ref}}
        elif model is not None:
            entry["content"] = {
                route.response_media_type: {"schema": refs[(model, "serialization")]}
            }
        elif status not in (204, 304):
            entry["content"] = {route.response_media_type: {"schema": {"type": "string"}}}
        out[str(status)] = entry
    return out


def _operation(
    route: Route, refs: dict[tuple[Any, Mode], Any], defs: dict[str, Any]
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": route.summary or route.key,
        "tags": [route.tag],
        "parameters": [{"$ref": "#/components/parameters/X-Request-Id"}],
        "responses": _responses(route, refs),
        "security": [] if route.auth == "public" else [{"ApiKey": []}],
        "x-stemedb-auth": route.auth,
    }
    if route.description:
        op["description"] = route.description
    if route.streaming:
        op["x-stemedb-streaming"] = True
    for name in route.path_params:
        op["parameters"].append(
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        )
    if route.query_model is not None:
        query_schema = defs[_component_name(refs[(route.query_model, "validation")])]
        op["parameters"] += _query_parameters(query_schema)
    if route.request_model is not None:
        ref = refs[(route.request_model, "validation")]
        content: dict[str, Any] = {}
        for media in route.content_types:
            if media == "application/json":
                content[media] = {"schema": ref}
            else:
                content[media] = {
                    "schema": {"type": "string", "description": "one JSON value per line"}
                }
        op["requestBody"] = {"required": True, "content": content}
    return op


def build_openapi(routes: Sequence[Route], version: str) -> dict[str, Any]:
    """A complete OpenAPI 3.1 document for `routes`."""
    refs, defs = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    seen_ids: set[str] = set()
    for route in routes:
        op = _operation(route, refs, defs)
        if op["operationId"] in seen_ids:
            op["operationId"] += f"_{len(seen_ids)}"
        seen_ids.add(op["operationId"])
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = op
    tags = sorted({route.tag for route in routes})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "StemeDB API",
            "version": version,
            "description": "Signed, conflicting claims resolved at read time through lenses.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in tags],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": defs,
            "parameters": {
                "X-Request-Id": {
                    "name": "X-Request-Id",
                    "in": "header",
                    "required": False,
                    "description": "Echoed on the response (1-128 visible ASCII); else generated",
                    "schema": {"type": "string", "maxLength": 128},
                }
            },
            "headers": {
                "X-Request-Id": {
                    "description": "The request id (echoed or generated); also in the server log",
                    "schema": {"type": "string"},
                }
            },
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }
