"""bench/floor.py measures what it says: every signature verified, every row written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import datasets, floor


@pytest.fixture
def lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("BENCH_TMPDIR", str(tmp_path))
    seeds = [bytes([n]) * 32 for n in range(1, 4)]
    return [datasets._record((i, 10, seeds, "floortest")) for i in range(30)]


def test_strict_floor_verifies_and_writes_every_row(lines: list[str]) -> None:
    rows = floor._precompute(lines)
    assert len(rows) == 30
    assert {row[3][0] for row in rows} == set(range(1, 31))  # journal seq 1..30
    answer = floor.strict_floor(rows)
    assert answer["rps"] > 0 and answer["cpu_us"] > 0


def test_strict_floor_refuses_a_bad_signature(lines: list[str]) -> None:
    record = json.loads(lines[5])
    sig = record["signatures"][0]["signature"]
    record["signatures"][0]["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    lines[5] = json.dumps(record, separators=(",", ":"))
    with pytest.raises(AssertionError, match="failed to verify"):
        floor.strict_floor(floor._precompute(lines))


def test_stages_prices_each_step_of_the_batch_path(lines: list[str]) -> None:
    got = floor.stages(lines)
    assert set(got) == {
        "ndjson_line_parse_us",
        "validate_us",
        "draft_us",
        "verify_us",
        "store_write_us",
    }
    assert all(v > 0 for v in got.values())


def test_markdown_gives_each_method_and_ratio() -> None:
    res = {
        "records": 1000,
        "rounds": 1,
        "per_round": [{"loadavg": 1.5}],
        "floor_rps": 10_000,
        "floor_cpu_us": 80.0,
        "http_verify_pool_rps": 6_000,
        "http_verify_pool_vs_floor": 0.6,
        "http_verify_pool_server_cpu_cores": 1.2,
        "http_verify_pool_cpu_us": 200.0,
        "http_verify_serial_rps": 5_000,
        "http_verify_serial_vs_floor": 0.5,
        "http_verify_serial_server_cpu_cores": 1.0,
        "http_verify_serial_cpu_us": 200.0,
        "pool_vs_serial": 1.2,
        "gil_probe": {
            "verifies_per_s_1_thread": 24_000,
            "verifies_per_s_2_threads": 46_000,
            "speedup": 1.9,
            "us_per_verify": 41.0,
        },
        "loadavg_end": 2.0,
    }
    text = floor.markdown(res)
    assert "| 10,000 | 1.000 |" in text
    assert "| 6,000 | 0.600 | 1.2 | 200.0 |" in text
    assert "1.9×" in text
