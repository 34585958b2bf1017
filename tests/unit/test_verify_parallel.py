"""A batch's signatures checked on the verify pool give exactly the serial answer."""

from __future__ import annotations

import copy
import os
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stemedb import affinity, crypto
from stemedb.config import DEFAULT_SCHEME_TIERS
from stemedb.crypto import public_key_hex, sign, verify_many, verify_signature
from stemedb.errors import InvalidRequest, StemeError
from stemedb.records.prepare import prepare_ahead, prepare_record
from stemedb.signing import make_assertion

NOW = 1_700_000_000
SEEDS = [bytes([n]) * 32 for n in range(1, 5)]
AGENTS = [public_key_hex(seed) for seed in SEEDS]


@pytest.fixture(autouse=True)
def _always_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small test batches take the pool too (the inline cut-off is for speed only)."""
    monkeypatch.setattr(crypto, "MIN_PARALLEL_CHECKS", 1)


def _assertion(rng: random.Random, n: int) -> dict[str, Any]:
    return make_assertion(SEEDS[n % 2], f"bench/s{n}", "p", f"v{rng.randrange(5)}", 0.5, now_s=NOW)


def _cosigned(rng: random.Random, n: int) -> dict[str, Any]:
    record = _assertion(rng, n)
    unsigned = {k: v for k, v in record.items() if k != "signatures"}
    prepared = prepare_record(
        "assertion", record, now_s=NOW, scheme_tiers=DEFAULT_SCHEME_TIERS, require_signatures=True
    )
    message = crypto.signing_message("assertion", prepared.digest)
    unsigned["signatures"] = [
        {"agent_id": AGENTS[i], "signature": sign(SEEDS[i], message)} for i in (3, 0, 2)
    ]
    return unsigned


def _flip(signature: str) -> str:
    return ("0" if signature[0] != "0" else "1") + signature[1:]


def _payload(rng: random.Random, n: int) -> Any:
    """Good records mixed with every way a batch item can fail."""
    shape = rng.randrange(10)
    if shape <= 2:
        return _assertion(rng, n)
    if shape == 3:
        record = _cosigned(rng, n)
        for at in rng.sample(range(3), rng.randrange(1, 3)):
            record["signatures"][at]["signature"] = _flip(record["signatures"][at]["signature"])
        return record
    if shape == 4:
        return _cosigned(rng, n)
    if shape == 5:
        record = _assertion(rng, n)
        record["signatures"][0]["signature"] = _flip(record["signatures"][0]["signature"])
        return record
    if shape == 6:
        record = _cosigned(rng, n)
        record["signatures"][2]["agent_id"] = record["signatures"][0]["agent_id"]
        return record
    if shape == 7:
        record = _assertion(rng, n)
        record["confidence"] = 7
        return record
    if shape == 8:
        return rng.choice([None, [], "x", {"kind": "nope"}])
    return InvalidRequest.field("(root)", "not JSON")


def _serial(kind: str, payload: Any) -> Any:
    try:
        return prepare_record(
            kind,
            payload,
            now_s=NOW,
            scheme_tiers=DEFAULT_SCHEME_TIERS,
            require_signatures=True,
        )
    except Exception as exc:
        return exc


def _kind_of(payload: Any) -> str:
    return str(payload.get("kind", "assertion") if isinstance(payload, dict) else "assertion")


def _same(ahead: Any, serial: Any) -> None:
    if isinstance(serial, StemeError):
        assert type(ahead) is type(serial)
        assert ahead.to_dict() == serial.to_dict()
    else:
        assert ahead == serial


def _ahead(items: Any, threads: int, chunk: int) -> list[tuple[int, Any, Any]]:
    return list(
        prepare_ahead(
            items,
            _kind_of,
            now_s=NOW,
            scheme_tiers=DEFAULT_SCHEME_TIERS,
            require_signatures=True,
            threads=threads,
            chunk=chunk,
        )
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(0, 40),
    threads=st.sampled_from([1, 2, 3, 8]),
    chunk=st.integers(1, 17),
)
def test_prepare_ahead_matches_serial_prepare(
    seed: int, size: int, threads: int, chunk: int
) -> None:
    rng = random.Random(seed)
    payloads = [_payload(rng, n) for n in range(size)]
    expected = [
        None if isinstance(p, StemeError) else _serial(_kind_of(p), copy.deepcopy(p))
        for p in payloads
    ]
    got = _ahead(list(enumerate(payloads)), threads, chunk)
    assert [(index, payload) for index, payload, _ in got] == list(enumerate(payloads))
    for (_, _, ahead), serial in zip(got, expected, strict=True):
        _same(ahead, serial)


def test_a_bad_cosignature_names_every_failing_signature_in_order() -> None:
    rng = random.Random(1)
    record = _cosigned(rng, 0)
    for at in (2, 0):
        record["signatures"][at]["signature"] = _flip(record["signatures"][at]["signature"])
    [(_, _, ahead)] = _ahead([(0, record)], threads=2, chunk=4)
    error = ahead.to_dict()["error"]
    assert error["code"] == "invalid_signature"
    assert [d["field"] for d in error["details"]] == [
        "signatures.0.signature",
        "signatures.2.signature",
    ]
    _same(ahead, _serial("assertion", record))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 300), threads=st.integers(1, 8))
def test_verify_many_matches_serial(seed: int, size: int, threads: int) -> None:
    rng = random.Random(seed)
    checks = []
    for n in range(size):
        message = rng.randbytes(43)
        at = n % len(SEEDS)
        signature = sign(SEEDS[at], message)
        agent = AGENTS[at]
        bad = rng.randrange(6)
        if bad == 0:
            signature = _flip(signature)
        elif bad == 1:
            agent = AGENTS[(at + 1) % len(SEEDS)]
        elif bad == 2:
            signature = "zz" + signature[2:]
        checks.append((agent, signature, message))
    assert verify_many(checks, threads) == [verify_signature(*c) for c in checks]


def test_batches_are_verified_on_pool_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    names: set[str] = set()
    real = crypto.verify_signature

    def spy(agent: str, signature: str, message: bytes) -> bool:
        names.add(threading.current_thread().name)
        return real(agent, signature, message)

    monkeypatch.setattr(crypto, "verify_signature", spy)
    rng = random.Random(2)
    payloads = [_assertion(rng, n) for n in range(50)]
    got = _ahead(list(enumerate(payloads)), threads=2, chunk=25)
    assert all(not isinstance(ahead, Exception) for _, _, ahead in got)
    assert names and all(name.startswith("stemedb-verify") for name in names)
    names.clear()
    _ahead(list(enumerate(payloads)), threads=1, chunk=25)
    assert names == {threading.current_thread().name}


def test_an_error_of_the_source_comes_after_the_items_before_it() -> None:
    rng = random.Random(3)
    payloads = [_assertion(rng, n) for n in range(7)]

    def source() -> Iterator[tuple[int, Any]]:
        yield from enumerate(payloads)
        raise InvalidRequest.field("body", "stream broke")

    seen: list[int] = []
    with pytest.raises(InvalidRequest, match="stream broke"):
        for index, _, ahead in prepare_ahead(
            source(),
            _kind_of,
            now_s=NOW,
            scheme_tiers=DEFAULT_SCHEME_TIERS,
            require_signatures=True,
            threads=2,
            chunk=3,
        ):
            assert not isinstance(ahead, Exception)
            seen.append(index)
    assert seen == list(range(7))


def test_a_forked_child_gets_its_own_pool() -> None:
    import multiprocessing

    checks = [(AGENTS[0], sign(SEEDS[0], bytes([n]) * 8), bytes([n]) * 8) for n in range(40)]
    assert verify_many(checks, 2) == [True] * 40  # the parent's pool exists now
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply_async(verify_many, (checks, 2)).get(timeout=60) == [True] * 40


def test_verify_threads_setting() -> None:
    assert crypto.verify_threads(1) == 1
    assert crypto.verify_threads(3) == 3
    assert crypto.verify_threads(64) == crypto.MAX_VERIFY_THREADS
    assert crypto.verify_threads(0) == max(1, min(os.cpu_count() or 1, crypto.MAX_VERIFY_THREADS))


def test_auto_pinning_lets_the_verify_threads_spread(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, set[int]]] = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: calls.append((pid, cpus)))
    monkeypatch.setattr(crypto, "spread_cpus", None)
    monkeypatch.setattr(affinity, "Path", lambda _: type("P", (), {"iterdir": lambda s: []})())
    affinity.apply("auto")
    assert crypto.spread_cpus == {0, 1}
    assert calls[-1] == (0, {1})
    crypto._spread()
    assert calls[-1] == (0, {0, 1})
    monkeypatch.setattr(crypto, "spread_cpus", None)
    affinity.apply("1")
    assert crypto.spread_cpus is None  # an explicit list keeps verification inside it
