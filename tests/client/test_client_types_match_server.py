"""The client's TypedDicts are hand-written mirrors of the server's pydantic
models (the client stays standard-library only, see `stemedb/client/__init__.py`);
this test is what ties them: every key a TypedDict declares must be a property
of the server's schema (the JSON schema the OpenAPI document is built from), and
every `Literal` it declares must list exactly the values the server allows.
"""

from __future__ import annotations

import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest
from pydantic import BaseModel

from stemedb.client import types as client_types
from stemedb.service import models as server

PAIRS: list[tuple[type, tuple[type[BaseModel], ...]]] = [
    (client_types.WriteResult, (server.WriteResult,)),
    (client_types.BatchItem, (server.BatchItemResult,)),
    (client_types.BatchResult, (server.BatchResult,)),
    (client_types.Normalized, (server.NormalizeResult,)),
    (client_types.Explanation, (server.ExplanationOut,)),
    (client_types.LensGroup, (server.LensGroupOut,)),
    (client_types.QueryResult, (server.LensQueryOut, server.ListQueryOut)),
    (client_types.Claim, (server.ClaimOut,)),
    (client_types.Skeptic, (server.SkepticOut,)),
    (client_types.Frame, (server.FrameOut,)),
    (client_types.Feed, (server.FeedOut,)),
    (client_types.Health, (server.HealthOut,)),
    (client_types.Ready, (server.ReadyOut,)),
]


def _properties(models: tuple[type[BaseModel], ...]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for model in models:
        schema = model.model_json_schema(mode="serialization", by_alias=True)
        merged.update(schema.get("properties", {}))
    return merged


def _allowed_values(prop: dict[str, Any]) -> set[Any] | None:
    """The enum/const values a schema property allows, or None when it is open."""
    values: set[Any] = set()
    options = prop.get("anyOf", [prop])
    for option in options:
        if "enum" in option:
            values.update(option["enum"])
        elif "const" in option:
            values.add(option["const"])
        elif option.get("type") == "null":
            continue
        else:
            return None
    return values or None


def _literal_values(annotation: Any) -> set[Any] | None:
    if get_origin(annotation) is Literal:
        return set(get_args(annotation))
    if get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in get_args(annotation):
            found = _literal_values(arg)
            if found is not None:
                return found
    return None


@pytest.mark.parametrize("client_type, models", PAIRS, ids=lambda v: getattr(v, "__name__", ""))
def test_client_type_matches_the_server_schema(
    client_type: type, models: tuple[type[BaseModel], ...]
) -> None:
    props = _properties(models)
    hints = get_type_hints(client_type)
    unknown = sorted(set(hints) - set(props))
    assert not unknown, f"{client_type.__name__} declares keys the server never sends: {unknown}"
    for key, annotation in hints.items():
        declared = _literal_values(annotation)
        allowed = _allowed_values(props[key])
        if declared is not None and allowed is not None:
            assert declared == allowed, (
                f"{client_type.__name__}.{key}: client says {sorted(declared)}, "
                f"server allows {sorted(allowed)}"
            )
