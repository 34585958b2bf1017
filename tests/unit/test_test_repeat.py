"""tools/test_repeat.py (`make test-repeat`): one line per run, stop at the first failure.

Each case runs the real script on a tiny throw-away test file, so the counts come
from pytest's JUnit report exactly as in a full series.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("test_repeat_tool", ROOT / "tools/test_repeat.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


RUN_LINE = re.compile(
    r"^run +(\d+)/(\d+)  (PASS|FAIL \(exit \d+\))  passed (\d+)  failed (\d+)  errors (\d+)  "
    r"skipped (\d+)  [0-9.]+ s  \S+Z$"
)


def _suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suite" / "test_sample.py"
    path.parent.mkdir()
    path.write_text(body, encoding="utf-8")
    return path


def test_every_run_is_one_line_with_pytests_counts(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        "import pytest\n"
        "def test_a(): pass\n"
        "def test_b(): pass\n"
        "@pytest.mark.skip(reason='x')\n"
        "def test_c(): pass\n",
    )
    log = tmp_path / "repeat.log"
    assert _tool().main(["--runs", "2", "--log", str(log), str(suite)]) == 0
    lines = log.read_text().splitlines()
    runs = [RUN_LINE.match(line) for line in lines if line.startswith("run ")]
    assert len(runs) == 2 and all(runs)
    assert [m.groups() for m in runs if m] == [
        ("1", "2", "PASS", "2", "0", "0", "1"),
        ("2", "2", "PASS", "2", "0", "0", "1"),
    ]
    assert lines[0].startswith("# test-repeat: 2 runs") and lines[1].startswith("# git ")
    assert lines[-1].startswith("# summary: 2/2 consecutive runs passed")
    assert not list(tmp_path.glob("repeat.log.run*.out"))  # passing output is not kept


def test_the_series_stops_at_the_first_failure_and_keeps_its_output(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "def test_ok(): pass\ndef test_broken(): assert 1 == 2\n")
    log = tmp_path / "repeat.log"
    assert _tool().main(["--runs", "5", "--log", str(log), str(suite)]) == 1
    lines = log.read_text().splitlines()
    runs = [line for line in lines if line.startswith("run ")]
    assert len(runs) == 1, runs  # runs 2..5 never started
    match = RUN_LINE.match(runs[0])
    assert match and match.groups() == ("1", "5", "FAIL (exit 1)", "1", "1", "0", "0")
    assert "stopped at the first failure" in lines[-1]
    kept = tmp_path / "repeat.log.run1.out"
    assert "assert 1 == 2" in kept.read_text()


def test_a_run_that_collects_nothing_is_a_failure(tmp_path: Path) -> None:
    empty = tmp_path / "suite"
    empty.mkdir()
    log = tmp_path / "repeat.log"
    assert _tool().main(["--runs", "3", "--log", str(log), str(empty)]) == 1
    assert "FAIL (exit 5)" in log.read_text()


def test_runs_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        _tool().main(["--runs", "0", "--log", str(tmp_path / "x.log")])
    assert exc.value.code == 2
