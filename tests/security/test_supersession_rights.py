"""Supersession rights (spec lenses.md, last section), end to end on real servers.

A supersession is accepted only from an agent that signed the target (any of
its signers) or with an admin key; a replacement it names must be signed by a
signer of the target (or the request made with an admin key). The same rule
holds in batches, for targets written earlier in the same batch. With
authentication off the signer rule applies to every signed supersession; an
unsigned one is accepted only when signatures are optional. Before the fix any
writer could hide anybody's claim.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2ekit import Agent, RunningServer, ServerFactory, unique
from rightskit import AUTH_ENV, ROOT_KEY, AuthServer

from stemedb.config import DEFAULT_SCHEME_TIERS
from stemedb.records import prepare_record
from stemedb.signing import sign_record

OPEN_ENV = {"STEMEDB_RATE_LIMIT_WRITE": "0", "STEMEDB_QUERY_AUDIT": "false"}


@pytest.fixture(scope="module")
def srv(module_server_factory: ServerFactory) -> Iterator[AuthServer]:
    server = module_server_factory(AUTH_ENV)
    auth = AuthServer(server, {"admin": ROOT_KEY})
    auth.keys["writer"] = auth.new_key("writer")
    yield auth
    server.proc.stop()


def _target(srv: AuthServer, *signers: Agent) -> str:
    record = sign_record(
        "assertion",
        {"subject": f"sup/{unique()}", "predicate": "p", "object": unique(), "confidence": 0.9},
        [agent.seed for agent in signers],
    )
    return srv.admin_write("/v1/assert", record)


def _supersede(agent: Agent, target: str, **extra: Any) -> dict[str, Any]:
    return agent.record("supersession", target_hash=target, reason=f"wrong {unique()}", **extra)


def test_a_non_signer_gets_403_with_a_reason_and_nothing_is_written(srv: AuthServer) -> None:
    owner, stranger = Agent(), Agent()
    target = _target(srv, owner)
    before = srv.head_seq()
    resp = srv.post("/v1/supersede", _supersede(stranger, target), srv.keys["writer"])
    assert resp.status == 403, resp
    assert resp.error["code"] == "forbidden"
    assert resp.error["details"][0]["field"] == "target_hash"
    assert "signer of the target" in resp.error["message"]
    assert srv.head_seq() == before
    shown = srv.api.get(f"/v1/assertions/{target}", headers={"X-API-Key": ROOT_KEY}).json
    assert shown["superseded"] is False


def test_the_signer_and_any_co_signer_may_supersede(srv: AuthServer) -> None:
    owner, co_signer = Agent(), Agent()
    target = _target(srv, owner, co_signer)
    resp = srv.post("/v1/supersede", _supersede(co_signer, target), srv.keys["writer"])
    assert resp.status == 201, resp
    solo = _target(srv, owner)
    assert srv.post("/v1/supersede", _supersede(owner, solo), srv.keys["writer"]).status == 201


def test_an_admin_key_may_supersede_anything(srv: AuthServer) -> None:
    owner, moderator, other = Agent(), Agent(), Agent()
    target = _target(srv, owner)
    replacement = _target(srv, other)
    record = _supersede(moderator, target, replacement_hash=replacement)
    assert srv.post("/v1/supersede", record, ROOT_KEY).status == 201


def test_a_replacement_must_come_from_a_signer_of_the_target(srv: AuthServer) -> None:
    owner, other = Agent(), Agent()
    target = _target(srv, owner)
    foreign = _target(srv, other)
    before = srv.head_seq()
    resp = srv.post(
        "/v1/supersede", _supersede(owner, target, replacement_hash=foreign), srv.keys["writer"]
    )
    assert resp.status == 403, resp
    assert resp.error["details"][0]["field"] == "replacement_hash"
    assert srv.head_seq() == before
    own = _target(srv, owner)
    resp = srv.post(
        "/v1/supersede", _supersede(owner, target, replacement_hash=own), srv.keys["writer"]
    )
    assert resp.status == 201, resp


def test_an_unknown_target_is_404(srv: AuthServer) -> None:
    resp = srv.post("/v1/supersede", _supersede(Agent(), "ab" * 32), srv.keys["writer"])
    assert resp.status == 404, resp
    assert resp.error["details"][0]["field"] == "target_hash"


def test_batches_check_each_supersession(srv: AuthServer) -> None:
    owner, stranger = Agent(), Agent()
    target = _target(srv, owner)
    bad = {**_supersede(stranger, target), "kind": "supersession"}
    good = {**_supersede(owner, target), "kind": "supersession"}
    before = srv.head_seq()
    resp = srv.post("/v1/assert/batch", [bad, good], srv.keys["writer"])
    assert resp.status == 200, resp
    assert [r["status"] for r in resp.json["results"]] == ["rejected", "created"]
    assert resp.json["results"][0]["error"]["code"] == "forbidden"
    assert srv.head_seq() == before + 1
    again = {**_supersede(stranger, target), "kind": "supersession"}
    resp = srv.ndjson([again], srv.keys["writer"], atomic=True)
    assert resp.status == 400, resp
    assert resp.error["code"] == "batch_rejected"
    assert resp.json["results"][0]["error"]["code"] == "forbidden"
    assert srv.head_seq() == before + 1


def test_a_target_earlier_in_the_same_batch_counts(srv: AuthServer) -> None:
    owner, stranger = Agent(), Agent()
    fresh = owner.assertion(f"sup/{unique()}", "p", unique())
    target = prepare_record(
        "assertion",
        fresh,
        now_s=fresh["timestamp"],
        scheme_tiers=DEFAULT_SCHEME_TIERS,
        require_signatures=True,
    ).hash_hex
    records = [
        fresh,
        {**_supersede(stranger, target), "kind": "supersession"},
        {**_supersede(owner, target), "kind": "supersession"},
    ]
    resp = srv.post("/v1/assert/batch", records, srv.keys["writer"])
    assert resp.status == 200, resp
    assert resp.json["results"][0]["hash"] == target
    assert [r["status"] for r in resp.json["results"]] == ["created", "rejected", "created"]


@pytest.fixture(scope="module")
def open_server(module_server_factory: ServerFactory) -> Iterator[RunningServer]:
    server = module_server_factory({**OPEN_ENV, "STEMEDB_REQUIRE_SIGNATURES": "true"})
    yield server
    server.proc.stop()


@pytest.fixture(scope="module")
def lax_server(module_server_factory: ServerFactory) -> Iterator[RunningServer]:
    server = module_server_factory({**OPEN_ENV, "STEMEDB_REQUIRE_SIGNATURES": "false"})
    yield server
    server.proc.stop()


def _open_target(server: RunningServer, agent: Agent) -> str:
    body = server.api.write("/v1/assert", agent.assertion(f"sup/{unique()}", "p", unique()))
    return str(body["hash"])


def test_with_auth_off_the_signer_rule_applies(open_server: RunningServer) -> None:
    owner, stranger = Agent(), Agent()
    target = _open_target(open_server, owner)
    resp = open_server.api.post("/v1/supersede", _supersede(stranger, target))
    assert resp.status == 403, resp
    assert resp.error["details"][0]["field"] == "target_hash"
    assert open_server.api.post("/v1/supersede", _supersede(owner, target)).status == 201


def test_unsigned_supersessions_only_when_signatures_are_optional(
    lax_server: RunningServer,
) -> None:
    owner, stranger = Agent(), Agent()
    target = _open_target(lax_server, owner)
    unsigned = {"target_hash": target, "reason": "anonymous"}
    assert lax_server.api.post("/v1/supersede", unsigned).status == 201
    # a signed one is still held to the signer rule on the same server
    other = _open_target(lax_server, owner)
    assert lax_server.api.post("/v1/supersede", _supersede(stranger, other)).status == 403


@pytest.fixture(scope="module")
def lax_auth(module_server_factory: ServerFactory) -> Iterator[AuthServer]:
    server = module_server_factory({**AUTH_ENV, "STEMEDB_REQUIRE_SIGNATURES": "false"})
    auth = AuthServer(server, {"admin": ROOT_KEY})
    auth.keys["writer"] = auth.new_key("writer")
    yield auth
    server.proc.stop()


def test_with_auth_on_an_unsigned_supersession_needs_an_admin_key(lax_auth: AuthServer) -> None:
    target = _target(lax_auth, Agent())
    unsigned = {"target_hash": target, "reason": "no name"}
    resp = lax_auth.post("/v1/supersede", unsigned, lax_auth.keys["writer"])
    assert resp.status == 403, resp
    assert resp.error["details"][0]["field"] == "signatures"
    assert lax_auth.post("/v1/supersede", unsigned, ROOT_KEY).status == 201
