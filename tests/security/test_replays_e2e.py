"""Issue 14 item 1, the leftovers, on a real server: replays stored before v0.2
are not counted by lenses after the upgrade (data-model.md §7).

The old file (tests/replaykit.py) holds, next to each record, copies re-minted
by an attacker on the pre-v0.2 server: other signature-entry timestamps, and
each co-signer's entry alone. Before this change those copies stayed in the
projections after the upgrade, so the skeptic lens counted the co-signed claim
five times against one. Now the server starts, lists them as replays, and:

* the skeptic answer is the honest 50/50 (each claim counted once);
* the journal keeps every frame (health's journal seq is unchanged);
* `GET /v1/assertions/<replay id>` (and `/v1/trace/...`) is a 404 saying
  `replay_of <record id>`,
  the record itself is served;
* `POST /v1/admin/verify` passes and counts the replays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from replaykit import SUBJECT, as_found_by_the_upgrade, old_frame, records, replays_of, write_old
from securekit import Resp

LIMITS_OFF = {"STEMEDB_RATE_LIMIT_WRITE": "0", "STEMEDB_RATE_LIMIT_READ": "0"}

Http = Callable[..., Resp]


def test_replays_of_an_old_file_are_not_counted_after_the_upgrade(
    tmp_path: Path, run_server_process: Callable[..., Any], http: Http
) -> None:
    every_kind = records()
    originals = [old_frame(kind, record) for kind, record in every_kind]
    replays = [frame for kind, record in every_kind for frame in replays_of(kind, record)]
    write_old(tmp_path / "db", [originals, replays])
    as_found_by_the_upgrade(tmp_path / "db" / "stemedb.db", digests_backfilled=False)

    server = run_server_process(LIMITS_OFF)
    assert "replays" in server.output or "backfilled" in server.output

    health = http(server.url, "GET", "/v1/health").json
    assert health["journal_seq"] == len(originals) + len(replays)  # every frame kept

    answer = http(server.url, "GET", f"/v1/skeptic?subject={SUBJECT}&predicate=p").json
    claims = sorted(
        (c["object"]["value"], c["share"], c["assertion_count"]) for c in answer["claims"]
    )
    assert claims == [("no", 0.5, 1), ("yes", 0.5, 1)], answer

    yes = originals[0].hash.hex()
    assert http(server.url, "GET", f"/v1/assertions/{yes}").status == 200
    for replay in (r for r in replays if r.kind == "assertion"):
        for route in ("/v1/assertions", "/v1/trace"):
            resp = http(server.url, "GET", f"{route}/{replay.hash.hex()}")
            assert resp.status == 404
            (detail,) = resp.error["details"]
            want = f"replay_of {_record_of(replay, originals)}"
            assert detail == {"field": "hash", "problem": want}, route

    report = http(server.url, "POST", "/v1/admin/verify", {}).json
    assert report["ok"] is True, report
    (replay_check,) = (c for c in report["checks"] if c["check"] == "replays")
    assert replay_check["detail"].startswith(f"{len(replays)} journal frames are replays")


def _record_of(replay: Any, originals: list[Any]) -> str:
    from stemedb.store.digests import digest_of

    want = digest_of(replay.record)
    return str(next(o.hash.hex() for o in originals if digest_of(o.record) == want))
