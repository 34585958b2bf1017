"""Circuit-breaker trips survive a restart (issue 19 item 3, leftover of the first pass).

A tripped agent must not get a fresh start by restarting the server: the trip,
its reason and its reset time are kept in the `breaker_trips` table, loaded at
start, and cleared by an admin reset (which also survives a restart).
"""

from __future__ import annotations

import time

from e2ekit import Agent, ServerFactory, metric_value, unique

from tests.security.test_breakers import BREAKERS, _bad_vote, _claim


def test_a_trip_and_its_reset_time_survive_a_restart(server_factory: ServerFactory) -> None:
    first = server_factory(BREAKERS)
    api = first.api
    bad, good = Agent(), Agent()
    for _ in range(5):
        assert api.post("/v1/vote", _bad_vote(bad)).status == 404
    [before] = api.get_ok("/v1/admin/breakers")["breakers"]
    assert before["agent_id"] == bad.id and before["state"] == "open"
    assert first.proc.stop() == 0

    second = server_factory(BREAKERS, base=first.base)
    api = second.api
    listing = api.get_ok("/v1/admin/breakers")
    assert listing["open"] == 1
    [after] = listing["breakers"]
    for field in ("agent_id", "reason", "detail", "tripped_at", "reset_at", "trips"):
        assert after[field] == before[field], field
    assert metric_value(api, "stemedb_breakers_open") == 1.0
    refused = api.post("/v1/assert", _claim(bad, f"drugs/{unique()}"))
    assert refused.status == 429 and refused.error["code"] == "breaker_open"
    assert before["reset_at"] in refused.error["message"]
    assert api.post("/v1/assert", _claim(good, f"drugs/{unique()}")).status == 201

    # An admin reset clears the saved trip too: the next restart starts closed.
    assert api.ok("POST", f"/v1/admin/breakers/{bad.id}/reset") == {"agent_id": bad.id, "closed": 1}
    assert second.proc.stop() == 0
    api = server_factory(BREAKERS, base=first.base).api
    assert api.get_ok("/v1/admin/breakers")["open"] == 0
    assert api.post("/v1/assert", _claim(bad, f"drugs/{unique()}")).status == 201


def test_an_expired_trip_is_not_reopened(server_factory: ServerFactory) -> None:
    env = {**BREAKERS, "STEMEDB_BREAKER_OPEN_S": "1"}
    first = server_factory(env)
    bad = Agent()
    for _ in range(5):
        assert first.api.post("/v1/vote", _bad_vote(bad)).status == 404
    assert first.api.get_ok("/v1/admin/breakers")["open"] == 1
    assert first.proc.stop() == 0
    time.sleep(1.2)  # past its reset time while the server is down
    api = server_factory(env, base=first.base).api
    assert api.get_ok("/v1/admin/breakers")["open"] == 0
    assert api.post("/v1/assert", _claim(bad, f"drugs/{unique()}")).status == 201
