"""Read endpoints over HTTP: assertion by hash, query (GET/POST, every filter,
pagination, every lens), skeptic, layered, trace, concepts, epochs (api.md "Reads")."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from e2ekit import Agent, Api, unique

DAY = 86400
LENSES = (
    "recency",
    "confidence",
    "consensus",
    "authority",
    "trust",
    "votes",
    "best",
    "epoch",
    "skeptic",
    "layered",
)


@dataclass
class Data:
    root: str
    s1: str
    s2: str
    s3: str
    s4: str
    alias: str
    t: int
    agents: dict[str, Agent]
    h: dict[str, str] = field(default_factory=dict)
    epoch1: str = ""


@pytest.fixture(scope="module")
def data(api: Api) -> Data:
    """A small world: three agents disagreeing about `<root>/drug/a`, neighbours for
    prefix matching, an epoch, a supersession, lineage, votes and an alias."""
    root = unique("r")
    a, b, c = Agent(), Agent(), Agent()
    t = int(time.time()) - 10 * DAY
    d = Data(
        root,
        f"{root}/drug/a",
        f"{root}/drug/a/sub",
        f"{root}/drug/ab",
        f"{root}/drug/b",
        f"{root}-alias",
        t,
        {"A": a, "B": b, "C": c},
    )
    d.epoch1 = api.write("/v1/epoch", a.record("epoch", name=unique("e")))["hash"]
    # Tiers above Observational need an admin's registration (docs/security.md): A cites
    # pubmed (Clinical), C is the regulator (fda://, and a Clinical claim).
    registrar = Agent()
    for agent, tier in ((a, "Clinical"), (c, "Regulatory")):
        api.write(
            "/v1/admin/agents", registrar.record("agent_tier", agent_id=agent.id, max_tier=tier)
        )
    records = {
        "a1": a.assertion(
            d.s1, "risk", "high", 0.9, source="pubmed://1", lifecycle="Approved", timestamp=t
        ),
        "a2": b.assertion(d.s1, "risk", "low", 0.6, source_class="Anecdotal", timestamp=t + 100),
        "a3": c.assertion(
            d.s1,
            "risk",
            "high",
            0.5,
            source="fda://label",
            timestamp=t + 200,
            lifecycle="UnderReview",
            epoch=d.epoch1,
        ),
        "a4": a.assertion(d.s1, "dose", 5, 0.7, source_class="Expert", timestamp=t + 50),
        "a5": c.assertion(d.s1, "risk", "old", 0.99, source_class="Clinical", timestamp=t + 300),
        "s2": b.assertion(d.s2, "risk", "mid", 0.5, source_class="Community", timestamp=t + 10),
        "s3": b.assertion(d.s3, "risk", "x", 0.5, timestamp=t + 10),
        "s4": b.assertion(d.s4, "risk", "y", 0.5, timestamp=t + 10),
        "src": c.assertion(
            f"{root}/other", "cites", "z", 0.4, source="pubmed://1", timestamp=t + 10
        ),
    }
    hashes = api.batch_ok(list(records.values()))
    d.h = dict(zip(records, hashes, strict=True))
    child = a.assertion(
        d.s1,
        "risk",
        "high",
        0.95,
        parent_hash=d.h["a1"],
        timestamp=t + 400,
        source="pubmed://2",
        lifecycle="Approved",
    )
    d.h["child"] = api.write("/v1/assert", child)["hash"]
    grandchild = a.assertion(
        d.s1,
        "risk",
        "high",
        0.96,
        parent_hash=d.h["child"],
        timestamp=t + 500,
        source="pubmed://3",
        lifecycle="Approved",
    )
    d.h["grandchild"] = api.write("/v1/assert", grandchild)["hash"]
    d.h["sup"] = api.write(
        "/v1/supersede", c.record("supersession", target_hash=d.h["a5"], reason="retracted")
    )["hash"]
    api.write("/v1/vote", a.record("vote", assertion_hash=d.h["a2"], weight=1))
    api.write("/v1/vote", b.record("vote", assertion_hash=d.h["a2"], weight=0.5))
    api.write("/v1/aliases", a.record("alias", alias=d.alias, canonical=d.s1))
    return d


def hashes(body: dict[str, Any]) -> set[str]:
    return {x["hash"] for x in body["assertions"]}


def lens_result(api: Api, **params: Any) -> dict[str, Any]:
    body = api.query(**params)
    assert len(body["results"]) == 1, body
    return body["results"][0]


# ---- GET /v1/assertions/{hash} -------------------------------------------------------


def test_assertion_by_hash_unknown_and_malformed(api: Api, data: Data) -> None:
    got = api.get_ok(f"/v1/assertions/{data.h['a1']}")
    assert got["hash"] == data.h["a1"] and got["subject"] == data.s1
    assert got["lifecycle"] == "Approved" and got["tier"] == 1
    assert api.get_ok(f"/v1/assertions/{data.h['a1'].upper()}")["hash"] == data.h["a1"]
    resp = api.get("/v1/assertions/" + "ab" * 32)
    assert resp.status == 404 and resp.error["code"] == "not_found"
    assert "ab" * 32 in resp.error["message"]
    resp = api.get("/v1/assertions/xyz")
    assert resp.status == 400 and resp.error["details"][0]["field"] == "hash"
    assert api.get_ok(f"/v1/assertions/{data.h['a5']}")["superseded"] is True


# ---- /v1/query: listing ---------------------------------------------------------------


def test_query_get_and_post_with_concept_path_alias(api: Api, data: Data) -> None:
    expected = {data.h[k] for k in ("a1", "a2", "a3", "a4", "child", "grandchild")}
    by_get = api.get_ok("/v1/query", {"subject": data.s1})
    assert hashes(by_get) == expected and by_get["count"] == len(expected)
    assert by_get["next_cursor"] is None and by_get["query_id"]
    by_get_alias = api.get_ok("/v1/query", {"concept_path": data.s1})
    assert hashes(by_get_alias) == expected
    by_post = api.ok("POST", "/v1/query", {"concept_path": data.s1})
    assert hashes(by_post) == expected
    seqs = [x["seq"] for x in by_post["assertions"]]
    assert seqs == sorted(seqs)


def test_prefix_true_and_trailing_star_match_the_subtree_segment_wise(api: Api, data: Data) -> None:
    prefix = f"{data.root}/drug/a"
    subtree = {data.h[k] for k in ("a1", "a2", "a3", "a4", "child", "grandchild", "s2")}
    assert hashes(api.get_ok("/v1/query", {"subject": prefix, "prefix": "true"})) == subtree
    assert hashes(api.query(subject=prefix + "/*")) == subtree
    assert hashes(api.get_ok("/v1/query", {"subject": prefix + "/*"})) == subtree
    # `drug/a` must not match the sibling `drug/ab`.
    assert data.h["s3"] not in hashes(api.query(subject=prefix, prefix=True))
    everything = hashes(api.query(subject=f"{data.root}/drug", prefix=True))
    assert {data.h["s3"], data.h["s4"]} <= everything
    assert hashes(api.query(subject=prefix)) == subtree - {data.h["s2"]}


def test_filter_predicate(api: Api, data: Data) -> None:
    assert hashes(api.query(subject=data.s1, predicate="dose")) == {data.h["a4"]}
    risk = hashes(api.query(subject=data.s1, predicate="risk"))
    assert risk == {data.h[k] for k in ("a1", "a2", "a3", "child", "grandchild")}


def test_filter_lifecycle_one_comma_and_any(api: Api, data: Data) -> None:
    approved = {data.h[k] for k in ("a1", "child", "grandchild")}
    assert hashes(api.query(subject=data.s1, lifecycle="Approved")) == approved
    assert hashes(api.query(subject=data.s1, lifecycle="approved,under_review")) == approved | {
        data.h["a3"]
    }
    assert hashes(
        api.get_ok("/v1/query", {"subject": data.s1, "lifecycle": "Approved,UnderReview"})
    ) == approved | {data.h["a3"]}
    assert len(hashes(api.query(subject=data.s1, lifecycle="any"))) == 6
    resp = api.post("/v1/query", {"subject": data.s1, "lifecycle": "Final"})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "lifecycle"


def test_filter_epoch(api: Api, data: Data) -> None:
    assert hashes(api.query(subject=data.s1, epoch=data.epoch1)) == {data.h["a3"]}
    resp = api.post("/v1/query", {"subject": data.s1, "epoch": "nope"})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "epoch"


def test_filter_source_class_and_max_tier(api: Api, data: Data) -> None:
    clinical = {data.h[k] for k in ("a1", "child", "grandchild")}
    assert hashes(api.query(subject=data.s1, source_class="Clinical")) == clinical
    assert hashes(api.query(subject=data.s1, source_class="PeerReviewed")) == clinical
    assert hashes(api.query(subject=data.s1, source_class="Regulatory,Clinical")) == clinical | {
        data.h["a3"]
    }
    assert hashes(api.query(subject=data.s1, max_tier=1)) == clinical | {data.h["a3"]}
    assert hashes(api.query(subject=data.s1, max_tier=3)) == clinical | {data.h["a3"], data.h["a4"]}
    resp = api.post("/v1/query", {"subject": data.s1, "source_class": "Rumour"})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "source_class"
    resp = api.post("/v1/query", {"subject": data.s1, "max_tier": 9})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "max_tier"


def test_filter_agent_id(api: Api, data: Data) -> None:
    a = data.agents["A"].id
    assert hashes(api.query(subject=data.s1, agent_id=a)) == {
        data.h[k] for k in ("a1", "a4", "child", "grandchild")
    }
    assert hashes(api.query(subject=data.s1, agent_id=Agent().id)) == set()


def test_filter_as_of_claim_time(api: Api, data: Data) -> None:
    assert hashes(api.query(subject=data.s1, as_of=data.t + 150)) == {
        data.h[k] for k in ("a1", "a2", "a4")
    }
    assert hashes(api.query(subject=data.s1, as_of=data.t - 1)) == set()
    result = lens_result(api, subject=data.s1, predicate="risk", lens="recency", as_of=data.t + 150)
    assert result["winner"]["hash"] == data.h["a2"]


def test_filter_known_at_system_time(api: Api) -> None:
    agent = Agent()
    subject = f"{unique('r')}/known"
    first = api.write("/v1/assert", agent.assertion(subject, "p", "first", 0.5))
    written = api.get_ok(f"/v1/assertions/{first['hash']}")["written_at"]
    known_at = -(-written // 1000)  # ceil: first is known by then
    while time.time() * 1000 <= known_at * 1000 + 5:
        time.sleep(0.02)
    second = api.write("/v1/assert", agent.assertion(subject, "p", "second", 0.5))
    assert hashes(api.query(subject=subject, known_at=known_at)) == {first["hash"]}
    assert hashes(api.query(subject=subject)) == {first["hash"], second["hash"]}
    result = lens_result(api, subject=subject, lens="recency", known_at=known_at)
    assert result["winner"]["hash"] == first["hash"] and result["candidates_count"] == 1
    assert api.query(subject=subject, known_at=known_at - 10)["count"] == 0


def test_decay_none_tier_and_days(api: Api, data: Data) -> None:
    as_of = data.t + 1000 * DAY
    common = {
        "subject": data.s1,
        "predicate": "risk",
        "lens": "confidence",
        "as_of": as_of,
        "lifecycle": "UnderReview,Proposed",
    }  # a2 (Anecdotal) and a3 (Regulatory)
    plain = lens_result(api, **common)
    scores = {e["hash"]: e["score"] for e in plain["explanation"]}
    assert scores[data.h["a3"]] == pytest.approx(0.5) and scores[data.h["a2"]] == pytest.approx(0.6)
    assert plain["winner"]["hash"] == data.h["a2"]
    tier = lens_result(api, **common, decay="tier")
    scores = {e["hash"]: e["score"] for e in tier["explanation"]}
    assert scores[data.h["a3"]] == pytest.approx(0.5)  # Regulatory never decays
    age_days = (as_of - (data.t + 100)) / DAY
    assert scores[data.h["a2"]] == pytest.approx(0.6 * 2 ** (-age_days / 30), rel=1e-6)
    assert tier["winner"]["hash"] == data.h["a3"]
    days = lens_result(api, **common, decay="100")
    scores = {e["hash"]: e["score"] for e in days["explanation"]}
    age3 = (as_of - (data.t + 200)) / DAY
    assert scores[data.h["a3"]] == pytest.approx(0.5 * 2 ** (-age3 / 100), rel=1e-6)
    assert days["winner"]["hash"] == data.h["a2"]
    assert (
        api.get_ok("/v1/query", {**common, "decay": "tier"})["results"][0]["winner"]["hash"]
        == data.h["a3"]
    )
    for bad in ("sometimes", "-3", "0"):
        resp = api.post("/v1/query", {**common, "decay": bad})
        assert resp.status == 400 and resp.error["details"][0]["field"] == "decay"


def test_include_superseded(api: Api, data: Data) -> None:
    assert data.h["a5"] not in hashes(api.query(subject=data.s1))
    shown = api.query(subject=data.s1, include_superseded=True)
    assert data.h["a5"] in hashes(shown)
    assert {x["hash"]: x["superseded"] for x in shown["assertions"]}[data.h["a5"]] is True
    hidden = lens_result(api, subject=data.s1, predicate="risk", lens="confidence")
    assert hidden["winner"]["hash"] != data.h["a5"]
    excluded = {e["hash"]: e["excluded"] for e in hidden["explanation"]}
    assert excluded.get(data.h["a5"]) == "superseded"
    included = lens_result(
        api, subject=data.s1, predicate="risk", lens="confidence", include_superseded=True
    )
    assert included["winner"]["hash"] == data.h["a5"]  # 0.99 is the highest confidence
    got = api.get_ok("/v1/query", {"subject": data.s1, "include_superseded": "true"})
    assert data.h["a5"] in hashes(got)


def test_aliases_resolve_unless_turned_off(api: Api, data: Data) -> None:
    via_alias = api.query(subject=data.alias)
    assert hashes(via_alias) == hashes(api.query(subject=data.s1))
    assert api.query(subject=data.alias, resolve_aliases=False)["count"] == 0
    got = api.get_ok("/v1/query", {"subject": data.alias, "resolve_aliases": "false"})
    assert got["count"] == 0
    result = lens_result(api, subject=data.alias, predicate="dose", lens="recency")
    assert result["subject"] == data.s1 and result["winner"]["hash"] == data.h["a4"]


def test_list_pagination_walks_every_page_without_duplicates_or_gaps(api: Api) -> None:
    agent = Agent()
    root = unique("page")
    records = [agent.assertion(f"{root}/s{i % 4}", f"p{i % 3}", i, 0.5) for i in range(23)]
    expected = set(api.batch_ok(records))
    for method in ("GET", "POST"):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"subject": root, "prefix": True, "limit": 5, "cursor": cursor}
            if method == "GET":
                body = api.get_ok("/v1/query", params)
            else:
                body = api.query(**{k: v for k, v in params.items() if v is not None})
            pages += 1
            assert body["count"] == len(body["assertions"]) <= 5
            seen += [x["hash"] for x in body["assertions"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert pages == 5
        assert len(seen) == len(set(seen)) == 23 and set(seen) == expected
    resp = api.post("/v1/query", {"subject": root, "limit": 1001})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "limit"
    resp = api.post("/v1/query", {"subject": root, "cursor": "%%%"})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "cursor"


def test_lens_pagination_walks_every_group(api: Api) -> None:
    agent = Agent()
    root = unique("lpage")
    records = [agent.assertion(f"{root}/s{i % 4}", f"p{i % 3}", i, 0.5) for i in range(24)]
    api.batch_ok(records)
    groups: list[tuple[str, str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"subject": root, "prefix": True, "lens": "recency", "limit": 5}
        if cursor:
            params["cursor"] = cursor
        body = api.query(**params)
        assert len(body["results"]) <= 5
        groups += [(r["subject"], r["predicate"]) for r in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(groups) == len(set(groups)) == 12
    assert groups == sorted(groups)
    assert sum(1 for _ in groups) == 12


# ---- lenses ------------------------------------------------------------------------------


def test_every_lens_answers_in_the_documented_shape(api: Api, data: Data) -> None:
    for lens in LENSES:
        body = api.query(subject=data.s1, predicate="risk", lens=lens)
        assert body["lens"] == lens and body["query_id"] and "next_cursor" in body
        (result,) = body["results"]
        assert result["subject"] == data.s1 and result["predicate"] == "risk"
        assert result["candidates_count"] == 6  # five competing + the superseded one
        assert 0 <= result["conflict_score"] <= 1
        assert isinstance(result["resolution_confidence"], float)
        if lens == "skeptic":
            assert result["winner"] is None
            assert result["status"] == "Agreed" and result["claims"]  # 98 % say "high"
        else:
            assert result["winner"]["hash"] in data.h.values(), lens
        for line in result["explanation"]:
            assert set(line) == {"hash", "score", "excluded", "superseded", "why"}
            assert line["superseded"] == (line["hash"] == data.h["a5"])  # lenses.md step 3
            allowed = [None, "superseded", "epoch_superseded", "tier"]
            if lens == "best":  # not in api.md's list: `best` drops by lifecycle stage
                allowed.append("lifecycle")
            assert line["excluded"] in allowed, (lens, line)
            assert isinstance(line["why"], str) and line["why"]
        assert {e["hash"] for e in result["explanation"]} >= {data.h["a1"], data.h["a2"]}
    layered = lens_result(api, subject=data.s1, predicate="risk", lens="layered")
    assert "cross_tier_conflict" in layered and layered["tiers"]


def test_lens_names_are_case_insensitive_with_aliases(api: Api, data: Data) -> None:
    for given, canonical in (
        ("RECENCY", "recency"),
        ("Trust_Aware_Authority", "trust"),
        ("vote_aware_consensus", "votes"),
        ("epoch_aware", "epoch"),
    ):
        assert api.query(subject=data.s1, predicate="risk", lens=given)["lens"] == canonical


def test_unknown_lens_is_a_400_listing_the_valid_names(api: Api, data: Data) -> None:
    resp = api.post("/v1/query", {"subject": data.s1, "lens": "oracle"})
    assert resp.status == 400, resp
    assert resp.error["code"] == "invalid_request"
    assert all(name in resp.error["message"] for name in LENSES)
    resp = api.post("/v1/query", {"subject": data.s1, "lens": "epoch", "inner": "oracle"})
    assert resp.status == 400, resp
    resp = api.post("/v1/query", {"subject": data.s1, "lens": "epoch", "inner": "skeptic"})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "inner"


def test_votes_lens_and_epoch_lens_with_inner(api: Api, data: Data) -> None:
    votes = lens_result(api, subject=data.s1, predicate="risk", lens="votes")
    assert votes["winner"]["hash"] == data.h["a2"]
    assert votes["resolution_confidence"] == pytest.approx(1.0)
    by_epoch = lens_result(api, subject=data.s1, predicate="risk", lens="epoch", inner="confidence")
    assert by_epoch["winner"]["hash"] == data.h["grandchild"]  # 0.96, epoch E1 not superseded


def test_lens_results_are_deterministic_byte_for_byte(api: Api, data: Data) -> None:
    for lens in LENSES:
        params = {"subject": f"{data.root}/drug", "prefix": True, "lens": lens}
        first = api.call("POST", "/v1/query", params)
        second = api.call("POST", "/v1/query", params)
        assert first.status == second.status == 200
        strip = re.compile(rb'"query_id":"[^"]*"')
        assert strip.sub(b"", first.body) == strip.sub(b"", second.body), lens
        get = api.get("/v1/query", params)
        assert strip.sub(b"", get.body) == strip.sub(b"", first.body), lens


def test_empty_match_is_200_with_an_empty_list(api: Api) -> None:
    body = api.query(concept_path=f"{unique('none')}/here", lens="recency")
    assert body["results"] == [] and body["next_cursor"] is None
    body = api.query(concept_path=f"{unique('none')}/here")
    assert body["assertions"] == [] and body["count"] == 0


def test_query_validation_errors_name_the_field(api: Api) -> None:
    resp = api.post("/v1/query", {"subject": "a/b", "colour": "red"})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "colour"
    resp = api.post("/v1/query", {"subject": "a//b"})
    assert resp.status == 400 and "subject" in json.dumps(resp.error)
    resp = api.get("/v1/query", {"subject": "a/b", "limit": "many"})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "limit"
    resp = api.post("/v1/query", ["subject"])
    assert resp.status == 400 and resp.error["code"] == "invalid_request"


# ---- skeptic and layered ------------------------------------------------------------


def test_skeptic_endpoint(api: Api, data: Data) -> None:
    body = api.get_ok("/v1/skeptic", {"subject": data.s1, "predicate": "risk"})
    assert body["subject"] == data.s1 and body["predicate"] == "risk"
    assert body["status"] == "Agreed" and body["candidates_count"] == 6
    assert 0 < body["conflict_score"] < 0.4
    claims = body["claims"]
    values = [c["object"]["value"] for c in claims]
    assert sorted(values) == ["high", "low"]  # the superseded "old" is left out
    shares = [c["share"] for c in claims]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1.0)
    high = claims[values.index("high")]
    assert high["assertion_count"] == 4
    assert high["tiers"] == {"Clinical": 3, "Regulatory": 1}
    assert high["best_tier"] == "Regulatory"
    assert set(high["agents"]) == {data.agents["A"].id, data.agents["C"].id}
    assert high["newest_timestamp"] == data.t + 500
    assert set(high["assertions"]) == {data.h[k] for k in ("a1", "a3", "child", "grandchild")}
    via_alias = api.get_ok("/v1/skeptic", {"concept_path": data.alias, "predicate": "risk"})
    assert via_alias["claims"] == claims
    empty = api.get_ok("/v1/skeptic", {"subject": f"{unique('none')}/x", "predicate": "p"})
    assert empty["status"] == "NoClaims" and empty["claims"] == []
    resp = api.get("/v1/skeptic", {"subject": data.s1})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "predicate"


def test_layered_endpoint(api: Api, data: Data) -> None:
    body = api.get_ok("/v1/layered", {"subject": data.s1, "predicate": "risk"})
    assert body["winner"]["hash"] == data.h["a3"]  # the Regulatory tier's winner
    tiers = [t["tier"] for t in body["tiers"]]
    assert tiers == sorted(tiers) and tiers[0] == 0 and 5 in tiers
    assert 0 <= body["cross_tier_conflict"] <= 1
    for key in ("resolution_confidence", "conflict_score", "explanation", "query_id"):
        assert key in body
    resp = api.get("/v1/layered", {"predicate": "risk"})
    assert resp.status == 400


# ---- trace ---------------------------------------------------------------------------------


def test_trace_lineage(api: Api, data: Data) -> None:
    trace = api.get_ok(f"/v1/trace/{data.h['grandchild']}")
    assert trace["assertion"]["hash"] == data.h["grandchild"]
    assert [x["hash"] for x in trace["ancestors"]] == [data.h["child"], data.h["a1"]]
    assert trace["children"] == []
    short = api.get_ok(f"/v1/trace/{data.h['grandchild']}", {"depth": 1})
    assert [x["hash"] for x in short["ancestors"]] == [data.h["child"]]
    root = api.get_ok(f"/v1/trace/{data.h['a1']}")
    assert root["ancestors"] == [] and root["children"] == [data.h["child"]]
    assert root["same_source"] == [data.h["src"]]  # both cite pubmed://1
    assert root["votes"] == {"count": 0, "total": 0.0}
    voted = api.get_ok(f"/v1/trace/{data.h['a2']}")
    assert voted["votes"]["count"] == 2 and voted["votes"]["total"] == pytest.approx(1.5)
    superseded = api.get_ok(f"/v1/trace/{data.h['a5']}")
    assert [s["hash"] for s in superseded["supersessions"]] == [data.h["sup"]]
    resp = api.get("/v1/trace/" + "cd" * 32)
    assert resp.status == 404 and resp.error["code"] == "not_found"


# ---- concepts -------------------------------------------------------------------------------


def test_concepts_browse_the_hierarchy(api: Api, data: Data) -> None:
    body = api.get_ok("/v1/concepts", {"prefix": f"{data.root}/drug"})
    assert body["prefix"] == f"{data.root}/drug"
    children = {c["segment"]: c for c in body["children"]}
    assert set(children) == {"a", "ab", "b"}
    assert children["a"]["assertion_count"] == 8  # 7 on drug/a (incl. superseded) + 1 below
    assert children["a"]["has_children"] is True
    assert children["a"]["path"] == data.s1
    assert children["ab"] == {
        "segment": "ab",
        "path": data.s3,
        "assertion_count": 1,
        "has_children": False,
    }
    top = api.get_ok("/v1/concepts", {"prefix": data.root})
    assert {c["segment"] for c in top["children"]} == {"drug", "other"}
    everything = api.get_ok("/v1/concepts")
    assert everything["prefix"] is None
    assert data.root in {c["segment"] for c in everything["children"]}
    resp = api.get("/v1/concepts", {"prefix": "a//b"})
    assert resp.status == 400


# ---- epochs --------------------------------------------------------------------------------


def test_epochs_list_and_by_id(api: Api, data: Data) -> None:
    listed = api.get_ok("/v1/epochs")["epochs"]
    mine = [e for e in listed if e["id"] == data.epoch1]
    assert len(mine) == 1
    assert set(mine[0]) >= {
        "id",
        "seq",
        "name",
        "description",
        "supersedes",
        "timestamp",
        "written_at",
        "superseded",
        "superseded_by",
    }
    assert api.get_ok(f"/v1/epochs/{data.epoch1}") == mine[0]
    resp = api.get("/v1/epochs/" + "ef" * 32)
    assert resp.status == 404 and resp.error["code"] == "not_found"
    resp = api.get("/v1/epochs/nope")
    assert resp.status == 400 and resp.error["details"][0]["field"] == "id"
