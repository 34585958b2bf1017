"""GET /v1/concepts/search: value text across subjects, from the FTS5 trigram index
that triggers keep in step with `assertions` (migration 0014, docs/console.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2ekit import Agent, ServerFactory, unique

from stemedb.store import schema
from stemedb.store.verify import reindex


def hits(body: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    return sorted((h["subject"], h["predicate"], h["value"], h["claims"]) for h in body["hits"])


def test_a_value_text_is_found_in_every_subject_and_survives_a_reindex(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    api = server.api
    tag = unique("tox")
    a, b = f"{unique('drugs')}/alpha", f"{unique('devices')}/beta/gamma"
    for conf in (0.7, 0.8):  # two claims of one value: one hit, two claims
        api.write("/v1/assert", Agent().assertion(a, "risk", f"Hepato_{tag}_signal", conf))
    api.write("/v1/assert", Agent().assertion(b, "note", f"no {tag} seen", 0.6))
    api.write("/v1/assert", Agent().assertion(b, "count", 42, 0.6))  # numbers are not text
    want = sorted([(a, "risk", f"Hepato_{tag}_signal", 2), (b, "note", f"no {tag} seen", 1)])

    body = api.get_ok("/v1/concepts/search", {"q": tag.upper()})
    assert hits(body) == want and body["subjects"] == 2 and body["complete"] is True
    assert hits(api.get_ok("/v1/concepts/search", {"q": tag, "prefix": b})) == [want[0]]
    # a prefix is whole path segments; quotes and FTS syntax are plain text
    assert api.get_ok("/v1/concepts/search", {"q": tag, "prefix": a[:-1]})["hits"] == []
    assert api.get_ok("/v1/concepts/search", {"q": f'"{tag} OR x*'})["hits"] == []
    bad = ({"q": "ab"}, {"q": f"{tag}\x00"}, {"q": tag, "limit": 0}, {"q": tag, "prefix": "a//b"})
    for params, field in zip(bad, ("q", "q", "limit", "prefix"), strict=True):
        resp = api.get("/v1/concepts/search", params)
        assert resp.status == 400 and field in resp.text, resp.text

    server.proc.stop()  # `stemedb reindex` deletes and re-derives `assertions`
    reindex(server.db_path)
    again = server_factory(base=server.base).api
    assert hits(again.get_ok("/v1/concepts/search", {"q": tag})) == want


def test_a_frequent_text_reads_a_bounded_number_of_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.console_triage import RowStore, fill
    from stemedb.service import value_search
    from stemedb.service.value_search import ValueSearch

    store = RowStore(tmp_path / "v.db")
    schema.apply_migrations(store.conn)
    fill(store.conn, 0, 200)  # values "v0-0" .. "v4-19": five per pair, 20 pairs
    search = ValueSearch(store)  # type: ignore[arg-type]
    whole = search.search("v3-", None, 500)
    assert whole["complete"] and len(whole["hits"]) == 20
    assert whole["hits"][0]["value"] == "v3-19"  # newest first
    assert not search.search("v3-", None, 5)["complete"]  # more distinct hits than the limit
    monkeypatch.setattr(value_search, "SCAN", 30)
    few = search.search("v3-", None, 500)
    assert not few["complete"] and sum(h["claims"] for h in few["hits"]) == 30
