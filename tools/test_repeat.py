"""Run the test suite N times in a row and stop at the first failure: flake evidence.

Issue 15 asks for 20 consecutive passing runs of `make test` on the 2-core
machine. `make test-repeat N=20` runs the lint step once (it is deterministic)
and then this script, which starts a fresh pytest process per run, with a JUnit
report so the counts come from pytest itself rather than from its text, and
writes one line per run to the log and to stdout:

    run  3/20  PASS  passed 1234  failed 0  errors 0  skipped 2  412.3 s  2026-12-04T21:30:00Z

The log opens with what the evidence was gathered on (git head and whether the
tree had changes, Python, CPUs, load average) and ends with one summary line.
A failed run ends the series (exit 1) and keeps its full pytest output next to
the log as `<log>.run<N>.out`; passing runs' output is discarded.

Usage: python tools/test_repeat.py [--runs N] [--log FILE] [PYTEST ARGS...]
(the arguments after the options go to pytest, e.g. `tests/unit`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Run:
    """One pytest run: its exit status, pytest's own counts and the wall time."""

    number: int
    returncode: int
    tests: int
    failures: int
    errors: int
    skipped: int
    seconds: float

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped

    @property
    def ok(self) -> bool:
        # pytest exits 0 only when every collected test passed or was skipped; 5
        # (nothing collected) is a failure here: a series of empty runs proves nothing.
        return self.returncode == 0 and self.failures == 0 and self.errors == 0

    def line(self, total: int) -> str:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        verdict = "PASS" if self.ok else f"FAIL (exit {self.returncode})"
        return (
            f"run {self.number:>2}/{total}  {verdict}  passed {self.passed}  "
            f"failed {self.failures}  errors {self.errors}  skipped {self.skipped}  "
            f"{self.seconds:.1f} s  {stamp}"
        )


def junit_counts(report: Path) -> tuple[int, int, int, int]:
    """(tests, failures, errors, skipped) summed over the report's test suites;
    all zero when pytest wrote no report (it died before the end)."""
    try:
        root = ET.parse(report).getroot()
    except (OSError, ET.ParseError):
        return 0, 0, 0, 0
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    totals = [0, 0, 0, 0]
    for suite in suites:
        for i, key in enumerate(("tests", "failures", "errors", "skipped")):
            totals[i] += int(suite.get(key, "0"))
    return totals[0], totals[1], totals[2], totals[3]


def run_once(number: int, pytest_args: Sequence[str], out: Path) -> Run:
    report = out.with_suffix(".xml")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += [f"--junitxml={report}", *pytest_args]
    started = time.monotonic()
    with out.open("w", encoding="utf-8") as sink:
        returncode = subprocess.call(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    tests, failures, errors, skipped = junit_counts(report)
    report.unlink(missing_ok=True)
    return Run(number, returncode, tests, failures, errors, skipped, seconds)


def header(runs: int, pytest_args: Sequence[str]) -> list[str]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"

    dirty = "with uncommitted changes" if git("status", "--porcelain") else "clean tree"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"# test-repeat: {runs} runs of pytest {' '.join(pytest_args) or '(all of tests/)'}",
        f"# git {git('rev-parse', '--short', 'HEAD')} ({dirty}), {ROOT}",
        f"# python {sys.version.split()[0]}, {os.cpu_count()} CPUs "
        f"({len(os.sched_getaffinity(0))} usable), load average {load}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run pytest N times in a row; stop at the first failure.",
        epilog="Arguments after the options are passed to pytest.",
    )
    parser.add_argument("--runs", "-n", type=int, default=20, help="how many runs (default 20)")
    parser.add_argument(
        "--log",
        type=Path,
        default=None,
        help="log file (default build/test-repeat/<UTC time>.log)",
    )
    args, pytest_args = parser.parse_known_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    log: Path = args.log or ROOT / "build" / "test-repeat" / (
        datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + ".log"
    )
    log.parent.mkdir(parents=True, exist_ok=True)

    def emit(line: str) -> None:
        print(line, flush=True)
        with log.open("a", encoding="utf-8") as sink:
            sink.write(line + "\n")

    for line in header(args.runs, pytest_args):
        emit(line)
    results: list[Run] = []
    for number in range(1, args.runs + 1):
        out = log.with_name(f"{log.name}.run{number}.out")
        result = run_once(number, pytest_args, out)
        results.append(result)
        emit(result.line(args.runs))
        if not result.ok:
            emit(f"# stopped at run {number}: its output is in {out}")
            break
        out.unlink(missing_ok=True)
    good = sum(r.ok for r in results)
    slowest = max(r.seconds for r in results)
    emit(
        f"# summary: {good}/{args.runs} consecutive runs passed"
        f"{'' if good == args.runs else ' (stopped at the first failure)'}; "
        f"{sum(r.passed for r in results)} test passes in all, slowest run {slowest:.1f} s"
    )
    print(f"log: {log}")
    return 0 if good == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
