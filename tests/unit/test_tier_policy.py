"""The tier cap's pure parts (stemedb/service/tier_policy.py): which tier a claim's
signers may claim, and how a candidate and a tier filter are capped."""

from __future__ import annotations

from stemedb.config import DEFAULT_SCHEME_TIERS, ConfigError, load_settings
from stemedb.lenses import Candidate
from stemedb.service.tier_policy import (
    TierCap,
    allowed_tier,
    annotate,
    cap_reason,
    cap_tier,
    read_filter,
    scheme_limit,
)
from stemedb.store.candidates import CandidateFilter

OBSERVATIONAL = 2
A, B = b"\xaa" * 32, b"\xbb" * 32


def test_an_unregistered_signer_reaches_at_most_the_unregistered_ceiling() -> None:
    fda = scheme_limit("fda://anything", "drugs/x", DEFAULT_SCHEME_TIERS)
    assert fda == ("fda", 0)
    tier, why = allowed_tier([A], {}, fda, OBSERVATIONAL)
    assert tier == OBSERVATIONAL
    assert cap_reason(0, tier, why) == (
        "declared Regulatory, capped to Observational: agent not registered for Regulatory"
    )


def test_the_source_scheme_can_only_lower_the_cap() -> None:
    blog = scheme_limit("blog://post", "drugs/x", DEFAULT_SCHEME_TIERS)
    tier, why = allowed_tier([A], {}, blog, OBSERVATIONAL)
    assert (tier, why) == (5, "source scheme 'blog' allows at most Anecdotal")
    # No known scheme (none, or an unknown one): only the ceiling applies.
    assert scheme_limit("x-internal://1", "drugs/x", DEFAULT_SCHEME_TIERS) is None
    assert allowed_tier([A], {}, None, OBSERVATIONAL)[0] == OBSERVATIONAL
    # Without a source, the subject's scheme speaks (as for the default source class).
    assert scheme_limit(None, "forum://thread/1", DEFAULT_SCHEME_TIERS) == ("forum", 4)


def test_registration_overrides_the_default_both_ways() -> None:
    assert allowed_tier([A], {A: 0}, None, OBSERVATIONAL)[0] == 0
    demoted, why = allowed_tier([A], {A: 4}, ("fda", 0), OBSERVATIONAL)
    assert demoted == 4 and "registered up to Community" in why


def test_co_signers_lend_the_best_registered_tier() -> None:
    tier, why = allowed_tier([A, B], {B: 1}, ("fda", 0), OBSERVATIONAL)
    assert tier == 1 and why.startswith("agent bbbbbbbbbbbb")
    assert allowed_tier([A, B], {A: 4}, None, OBSERVATIONAL)[0] == OBSERVATIONAL


def test_unsigned_claims_get_the_unregistered_default() -> None:
    tier, why = allowed_tier([], {}, None, OBSERVATIONAL)
    assert tier == OBSERVATIONAL and why.startswith("unsigned claims")


def test_cap_tier_only_ever_lowers_authority() -> None:
    c = Candidate("ab" * 32, "s", "p", '"v"', 0.9, 0, 1, "cd" * 32, "Proposed", None)
    assert cap_tier(c, 2).tier == 2
    assert cap_tier(c._replace(tier=4), 2).tier == 4
    assert cap_tier(c, 2)._replace(tier=0) == c


def test_a_tier_filter_reads_every_tier_that_can_cap_into_it() -> None:
    assert read_filter(CandidateFilter(tiers=(2,))).tiers == (0, 1, 2)
    assert read_filter(CandidateFilter(tiers=(0,))).tiers == (0,)
    assert read_filter(CandidateFilter(tiers=())).tiers == ()
    unfiltered = CandidateFilter()
    assert read_filter(unfiltered) is unfiltered


def test_annotate_adds_the_cap_to_each_line_and_lists_it() -> None:
    cap = TierCap(0, 2, "declared Regulatory, capped to Observational: x")
    body = {"explanation": [{"hash": "aa" * 32, "why": "tier Observational"}]}
    annotate(body, {b"\xaa" * 32: cap})
    assert body["explanation"][0]["why"].endswith("; " + cap.why)
    assert body["tier_caps"] == [
        {"hash": "aa" * 32, "declared": "Regulatory", "effective": "Observational", "why": cap.why}
    ]
    untouched: dict[str, object] = {"explanation": []}
    assert annotate(untouched, {}) == {"explanation": []}


def test_the_ceiling_is_configurable_by_name_or_number() -> None:
    assert load_settings({}).unregistered_max_tier == OBSERVATIONAL
    assert load_settings({"STEMEDB_UNREGISTERED_MAX_TIER": "regulatory"}).unregistered_max_tier == 0
    assert (
        load_settings({"STEMEDB_UNREGISTERED_MAX_TIER": "PeerReviewed"}).unregistered_max_tier == 1
    )
    assert load_settings({"STEMEDB_UNREGISTERED_MAX_TIER": "4"}).unregistered_max_tier == 4
    for bad in ("6", "gold", ""):
        try:
            load_settings({"STEMEDB_UNREGISTERED_MAX_TIER": bad})
        except ConfigError as exc:
            assert "STEMEDB_UNREGISTERED_MAX_TIER" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")
