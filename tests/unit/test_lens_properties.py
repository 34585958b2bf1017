"""Properties every lens must keep: order independence, shape, purity."""

from __future__ import annotations

import ast
import json
import math
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stemedb.lenses
from stemedb.lenses import LENS_NAMES, Candidate, LensContext, LensResult, resolve
from stemedb.lenses.scoring import tie_value

T = 1_700_000_000
E1, E2 = "1" * 64, "2" * 64
SIGNERS = ["a" * 64, "b" * 64, "c" * 64]
AGENTS: list[str | None] = [None, *SIGNERS]
INNERS = ["recency", "confidence", "consensus", "authority", "trust", "votes", "best"]


@st.composite
def candidates(draw: st.DrawFn) -> list[Candidate]:
    ids = draw(st.lists(st.integers(0, 2**20), unique=True, max_size=8))
    out = []
    for n in ids:
        out.append(
            Candidate(
                hash=f"{n:064x}",
                subject="s",
                predicate="p",
                value_key=json.dumps(
                    {"type": "Text", "value": draw(st.sampled_from("abc"))},
                    separators=(",", ":"),
                ),
                confidence=draw(
                    st.sampled_from([0.0, 0.1 + 0.2, 0.3, 0.5, 1.0])
                    | st.floats(0.0, 1.0, allow_nan=False)
                ),
                tier=draw(st.integers(0, 5)),
                timestamp=draw(st.sampled_from([T - 90_000, T - 3_000, T - 61, T, T + 500])),
                agent_id=draw(st.sampled_from(AGENTS)),
                lifecycle=draw(
                    st.sampled_from(
                        ["Proposed", "UnderReview", "Approved", "Deprecated", "Rejected"]
                    )
                ),
                epoch=draw(st.sampled_from([None, E1, E2])),
                superseded=draw(st.booleans()),
            )
        )
    return out


@st.composite
def contexts(draw: st.DrawFn, cands: list[Candidate]) -> LensContext:
    hashes = [c.hash for c in cands] + ["f" * 64]
    votes = draw(st.dictionaries(st.sampled_from(hashes), st.sampled_from([-1.0, 0.0, 0.5, 2.0])))
    trust = draw(
        st.dictionaries(
            st.sampled_from(SIGNERS),
            st.tuples(st.floats(0.0, 1.0), st.sampled_from([T - 10.0**7, float(T), T + 100.0])),
        )
    )
    return LensContext(
        at_s=T + 100,
        decay=draw(st.sampled_from([None, "tier", 7.5])),
        include_superseded=draw(st.booleans()),
        vote_totals=votes,
        trust=trust,
        superseded_epochs=draw(st.sampled_from([None, frozenset(), frozenset({E1})])),
        inner=draw(st.sampled_from(INNERS)),
    )


def check_shape(result: LensResult, cands: list[Candidate], ctx: LensContext) -> None:
    assert result.candidates_count == len(cands)
    assert sorted(e.hash for e in result.explanation) == sorted(c.hash for c in cands)
    assert 0.0 <= result.resolution_confidence <= 1.0
    assert 0.0 <= result.conflict_score <= 1.0
    json.dumps(result.extra, allow_nan=False)
    assert all(math.isfinite(e.score) for e in result.explanation)
    assert all("\n" not in e.why and e.why for e in result.explanation)
    competing = [e for e in result.explanation if e.excluded is None]
    assert result.explanation[: len(competing)] == tuple(competing)  # excluded come last
    assert all(e.score == 0.0 for e in result.explanation[len(competing) :])
    if result.winner is not None:
        assert competing[0].hash == result.winner.hash
        rest = competing[1:]
    else:
        rest = competing
    scores = [tie_value(e.score) for e in rest]
    assert scores == sorted(scores, reverse=True)
    if not ctx.include_superseded:
        hidden = {c.hash for c in cands if c.superseded}
        assert {e.hash for e in result.explanation if e.excluded == "superseded"} == hidden


@pytest.mark.parametrize("lens", LENS_NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_shuffling_candidates_never_changes_the_result(lens: str, data: st.DataObject) -> None:
    cands = data.draw(candidates())
    ctx = data.draw(contexts(cands))
    shuffled = data.draw(st.permutations(cands))
    result = resolve(lens, "s", "p", cands, ctx)
    assert resolve(lens, "s", "p", shuffled, ctx) == result
    assert resolve(lens, "s", "p", tuple(reversed(cands)), ctx) == result
    check_shape(result, cands, ctx)
    if lens == "skeptic":
        assert result.winner is None


@pytest.mark.parametrize("lens", LENS_NAMES)
def test_empty_input(lens: str) -> None:
    result = resolve(lens, "s", "p", [], LensContext(at_s=T))
    assert result.lens == lens
    assert result.winner is None
    assert result.candidates_count == 0
    assert result.resolution_confidence == 0.0
    assert result.conflict_score == 0.0
    assert result.explanation == ()


@pytest.mark.parametrize("lens", LENS_NAMES)
def test_one_candidate_wins_alone(lens: str) -> None:
    only = Candidate(
        "0" * 64, "s", "p", '{"type":"Number","value":1}', 0.7, 2, T, None, "Approved", None
    )
    result = resolve(lens, "s", "p", [only], LensContext(at_s=T))
    assert result.winner == (None if lens == "skeptic" else only)
    assert result.conflict_score == 0.0
    assert len(result.explanation) == 1 and result.explanation[0].excluded is None
    if lens in ("recency", "consensus", "authority", "trust", "best", "epoch", "layered"):
        assert result.resolution_confidence == 1.0


@pytest.mark.parametrize("lens", LENS_NAMES)
@pytest.mark.parametrize("ctx", [LensContext(at_s=math.nan), LensContext(at_s=T, decay=0.0)])
def test_invalid_context_is_rejected_even_without_candidates(lens: str, ctx: LensContext) -> None:
    with pytest.raises(ValueError):
        resolve(lens, "s", "p", [], ctx)


def test_package_imports_only_the_standard_library() -> None:
    package = Path(stemedb.lenses.__file__).parent
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, path
                roots, names = [(node.module or "").split(".")[0]], [node.module or ""]
            else:
                continue
            for root, name in zip(roots, names, strict=True):
                ok = root in sys.stdlib_module_names or name.startswith("stemedb.lenses")
                assert ok, f"{path.name} imports {name}"
