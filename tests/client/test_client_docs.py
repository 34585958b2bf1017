"""docs/api.md's endpoint table is generated from the route table, and the client
covers every route: a new endpoint fails here until it has a method and the table
is regenerated (`python docs/gen_api.py`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from stemedb.client import Client
from stemedb.client.api import ENDPOINT_METHODS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def gen_api() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api", DOCS / "gen_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_api"] = module
    spec.loader.exec_module(module)
    return module


def test_every_route_has_a_client_method() -> None:
    document = gen_api().openapi_document()
    routes = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    missing = sorted(routes - ENDPOINT_METHODS.keys())
    assert not missing, f"add these to stemedb.client.api.ENDPOINT_METHODS: {missing}"
    for route, name in ENDPOINT_METHODS.items():
        assert not name or callable(getattr(Client, name, None)), f"{route}: Client.{name}"


def test_the_generated_endpoint_table_is_up_to_date() -> None:
    assert gen_api().main(["--check"]) == 0, "run: .venv/bin/python docs/gen_api.py"


def test_render_replaces_only_the_marked_section() -> None:
    module = gen_api()
    text = f"before\n{module.BEGIN}\nold\n{module.END}\nafter\n"
    assert module.render(text, "NEW") == f"before\n{module.BEGIN}\n\nNEW\n\n{module.END}\nafter\n"
