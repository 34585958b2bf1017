"""The `explain` tool's text: ranked candidates with values, scores and reasons (pure)."""

from __future__ import annotations

from stemedb.mcp.render import explain_text, value_text

WINNER = {"hash": "a" * 64, "object": {"type": "Text", "value": "10 mg"}}


def _group(winner: object, lines: list[dict[str, object]]) -> dict[str, object]:
    return {
        "winner": winner,
        "resolution_confidence": 0.75,
        "conflict_score": 0.5,
        "candidates_count": len(lines),
        "explanation": lines,
    }


def test_a_winner_is_named_with_its_ranking_values_and_reasons() -> None:
    lines = [
        {"hash": "a" * 64, "score": 0.9, "why": "tier Regulatory", "excluded": None},
        {"hash": "b" * 64, "score": 0.4, "why": "tier Anecdotal", "excluded": None},
        {"hash": "c" * 64, "score": 0.0, "why": "", "excluded": "superseded"},
    ]
    values = {"a" * 64: WINNER["object"], "b" * 64: {"type": "Number", "value": 20}}
    text = explain_text("drugs/x", "dose", "authority", [_group(WINNER, lines)], values)
    rows = text.splitlines()
    assert rows[0] == "drugs/x / dose through lens authority:"
    assert f"winner '10 mg' (assertion {'a' * 64}" in rows[1] and "0.750" in rows[1]
    assert rows[3] == f"1. '10 mg' [{'a' * 12}] score 0.9000: tier Regulatory"
    assert rows[4] == f"2. 20 [{'b' * 12}] score 0.4000: tier Anecdotal"
    assert rows[5].endswith("EXCLUDED: superseded") and "(value not fetched)" in rows[5]


def test_no_winner_says_why_and_timestamps_print_as_integers() -> None:
    recency = [{"hash": "a" * 64, "score": 1796411403.0, "why": "newest", "excluded": None}]
    text = explain_text("s/t", "p", "skeptic", [_group(None, recency)], {})
    assert "no single winner: lens skeptic reports the conflict" in text
    assert "score 1796411403:" in text
    excluded = [{"hash": "a" * 64, "score": 0, "why": "", "excluded": "superseded"}]
    text = explain_text("s/t", "p", "recency", [_group(None, excluded)], {})
    assert "no winner: every candidate was excluded." in text
    assert explain_text("s/t", "p", "recency", [], {}).startswith("No claims for s/t / p")
    assert value_text({"type": "Boolean", "value": True}) == "true"
