"""A batch's signatures checked on the verify pool: a real server answers exactly as
the serial one does (STEMEDB_VERIFY_THREADS=1), record for record."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from e2ekit import Api, RunningServer, ServerFactory

from stemedb.signing import sign_record

SEEDS = [bytes([n]) * 32 for n in range(7, 11)]
NDJSON = "application/x-ndjson"


def _flip(record: dict[str, Any], at: int) -> None:
    sig = record["signatures"][at]["signature"]
    record["signatures"][at]["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]


def _batch(seed: int, size: int) -> list[str]:
    """Signed assertions, some co-signed, with bad signatures, duplicate signers,
    invalid fields and lines that are not JSON mixed in."""
    rng = random.Random(seed)
    lines = []
    for i in range(size):
        signers = rng.sample(SEEDS, rng.choice([1, 1, 1, 3]))
        unsigned = {
            "subject": f"pool/s{seed}-{i // 4}",
            "predicate": "p",
            "object": f"v{rng.randrange(5)}",
            "confidence": 0.5,
        }
        record = sign_record("assertion", unsigned, signers, now_s=1_700_000_000)
        shape = rng.randrange(12)
        if shape == 0:
            _flip(record, rng.randrange(len(record["signatures"])))
        elif shape == 1 and len(record["signatures"]) == 3:
            _flip(record, 0)
            _flip(record, 2)
        elif shape == 2 and len(record["signatures"]) == 3:
            record["signatures"][1]["agent_id"] = record["signatures"][0]["agent_id"]
        elif shape == 3:
            record["confidence"] = 3
        if shape == 4:
            lines.append("{not json")
        else:
            lines.append(json.dumps(record))
    return lines


def _post(api: Api, lines: list[str], atomic: bool) -> tuple[int, Any]:
    resp = api.call(
        "POST",
        "/v1/assert/batch",
        data=("\n".join(lines) + "\n").encode(),
        content_type=NDJSON,
        params={"atomic": "true"} if atomic else None,
    )
    return resp.status, resp.json


@pytest.fixture(scope="module")
def servers(module_server_factory: ServerFactory) -> tuple[RunningServer, RunningServer]:
    serial = module_server_factory({"STEMEDB_VERIFY_THREADS": "1"})
    pooled = module_server_factory({"STEMEDB_VERIFY_THREADS": "4"})
    return serial, pooled


def test_a_mixed_batch_gets_the_same_answer_from_the_pool(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    serial, pooled = servers
    lines = _batch(1, 700)
    want = _post(serial.api, lines, atomic=False)
    got = _post(pooled.api, lines, atomic=False)
    assert want[0] == 200 and got == want
    statuses = {r["status"] for r in got[1]["results"]}
    assert {"created", "rejected"} <= statuses
    codes = {r["error"]["code"] for r in got[1]["results"] if r["status"] == "rejected"}
    assert {"invalid_signature", "invalid_json", "invalid_request"} <= codes


def test_an_atomic_batch_refusal_names_the_same_signatures(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    serial, pooled = servers
    lines = _batch(2, 300)
    want = _post(serial.api, lines, atomic=True)
    got = _post(pooled.api, lines, atomic=True)
    assert want[0] == 400 and got == want
    fields = [d["field"] for d in got[1]["error"]["details"]]
    assert any(".signatures." in f for f in fields), fields  # e.g. "12.signatures.0.signature"
    assert got[1]["created"] == 0
