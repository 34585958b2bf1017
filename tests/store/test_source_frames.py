"""The frame check knows the `source` and `retraction` kinds (issue 17): Python and
the SQL of docs/forensics.md agree on each of their field rules, and a tampered
`tier` is a named problem, never a crash while projecting."""

from __future__ import annotations

import json
from typing import Any

import apsw
import pytest

from stemedb.store.frame_check import RECORD_RULES

CASES: list[Any] = [None, "Clinical", "clinical", "x", 5, True, [], {"a": 1}]
_ABSENT = object()


def _body(field: str, value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "source", "identifier": "doi:10.1/x", "timestamp": 1}
    if value is not _ABSENT:
        body[field] = value
    return body


@pytest.mark.parametrize("kind", ["source", "retraction"])
def test_python_and_sql_agree_on_every_rule(kind: str) -> None:
    conn = apsw.Connection(":memory:")
    for rule in RECORD_RULES[kind]:
        if "REGEXP" in rule.bad_sql:
            continue  # hex rules: covered by the shell in tests/reliability
        field = rule.field.split(".")[0].split("[")[0]
        for value in [*CASES, _ABSENT]:
            body = _body(field, value)
            py = bool(rule.bad_py(body))
            (sql,) = conn.execute(
                f"SELECT coalesce({rule.bad_sql}, 0) FROM (SELECT ? AS body)", (json.dumps(body),)
            ).fetchone()
            assert py == bool(sql), (kind, rule.field, value, py, sql)


def test_a_source_tier_outside_the_tiers_is_a_problem() -> None:
    tier = next(r for r in RECORD_RULES["source"] if r.field == "tier")
    assert tier.bad_py(_body("tier", "Sacred"))
    assert not tier.bad_py(_body("tier", "Expert"))
    assert not tier.bad_py(_body("tier", _ABSENT))
