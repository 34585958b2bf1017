"""STEMEDB_CPU_AFFINITY: parsing and the choice of CPUs (applying it is tested on a
real server process in tests/e2e/test_server_affinity.py)."""

from __future__ import annotations

import pytest

from stemedb.affinity import choose
from stemedb.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("auto", "auto"),
        (" OFF ", "off"),
        ("1", "1"),
        ("3,0-1", "0,1,3"),
        ("2-2", "2"),
    ],
)
def test_parse(raw: str, expected: str) -> None:
    assert load_settings({"STEMEDB_CPU_AFFINITY": raw}).cpu_affinity == expected


@pytest.mark.parametrize("raw", ["", "one", "1-", "3-1", "-1", "1,,2", "99999"])
def test_bad_values_name_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"STEMEDB_CPU_AFFINITY": raw})
    assert caught.value.variable == "STEMEDB_CPU_AFFINITY"


def test_default_is_auto() -> None:
    assert load_settings({}).cpu_affinity == "auto"


def test_auto_pins_to_the_highest_allowed_cpu() -> None:
    assert choose("auto", {0, 1}) == {1}
    assert choose("auto", {2, 5, 7}) == {7}


def test_auto_on_one_cpu_and_off_change_nothing() -> None:
    assert choose("auto", {3}) is None
    assert choose("off", {0, 1}) is None


def test_a_list_keeps_only_allowed_cpus() -> None:
    assert choose("0,2", {0, 1, 2, 3}) == {0, 2}
    assert choose("1,9", {0, 1}) == {1}


def test_a_list_with_no_allowed_cpu_is_refused() -> None:
    with pytest.raises(ConfigError, match="none of CPUs 8,9"):
        choose("8,9", {0, 1})


def test_a_seccomp_refusal_is_a_warning_not_a_failed_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import os

    from stemedb import affinity

    def refuse(pid: int, cpus: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    line = affinity.apply("auto")
    assert "NOT pinned" in line
    assert "cannot pin to CPU 1 (Operation not permitted)" in caplog.text
