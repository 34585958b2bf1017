"""Concept paths: normalisation, prefix ranges, segment-wise matching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stemedb.errors import InvalidRequest
from stemedb.paths import (
    check_path,
    is_under,
    leaf,
    normalise_path,
    parent,
    path_scheme,
    prefix_range,
    split_path,
)


@pytest.mark.parametrize(
    ("given_path", "expected"),
    [
        ("drugs/semaglutide", "drugs/semaglutide"),
        ("drugs/semaglutide/", "drugs/semaglutide"),
        ("FDA://drugs/Semaglutide/label", "fda://drugs/Semaglutide/label"),
        ("Pub.Med+x-1://38012345", "pub.med+x-1://38012345"),
        ("Ozempic", "Ozempic"),
        ("a b/c:d/é€", "a b/c:d/é€"),
        ("x" * 512, "x" * 512),
        ("x" * 512 + "/", "x" * 512),
        ("a/.../b", "a/.../b"),
    ],
)
def test_valid_paths(given_path: str, expected: str) -> None:
    assert normalise_path(given_path) == expected
    assert normalise_path(expected) == expected  # idempotent


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("", "empty"),
        ("/", "no segment"),
        ("fda://", "no segment"),
        ("/drugs", "segment 1 is empty"),
        ("drugs//x", "segment 2 is empty"),
        ("drugs//", "segment 2 is empty"),
        ("drugs/./x", "'.'"),
        ("drugs/../x", "'..'"),
        ("..", "'..'"),
        ("drugs/\x00", "U+0000"),
        ("drugs/a\nb", "U+000A"),
        ("drugs/a\x7fb", "U+007F"),
        ("drugs/a\x85b", "U+0085"),
        ("1fda://x", "invalid scheme"),
        ("f_da://x", "invalid scheme"),
        ("://x", "invalid scheme"),
        ("drugs/x://y", "invalid scheme"),
        ("x" * 513, "longer than 512"),
        ("fda://" + "x" * 507, "longer than 512"),
    ],
)
def test_invalid_paths_name_the_field(bad: str, problem: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        normalise_path(bad, "object.value")
    detail = info.value.details[0]
    assert detail["field"] == "object.value"
    assert problem in detail["problem"]
    assert info.value.message.startswith("object.value: ")


def test_non_string_rejected() -> None:
    with pytest.raises(ValueError):
        check_path(42)


def test_scheme_parent_leaf() -> None:
    assert path_scheme("fda://drugs/x") == "fda"
    assert path_scheme("drugs/x") is None
    assert path_scheme("drugs/a://b") is None
    assert parent("drugs/semaglutide/label") == "drugs/semaglutide"
    assert parent("drugs") is None
    assert parent("fda://drugs") is None
    assert parent("fda://drugs/x") == "fda://drugs"
    assert leaf("drugs/semaglutide/label") == "label"
    assert leaf("drugs") == "drugs"
    assert leaf("fda://drugs") == "drugs"
    assert split_path("fda://a/b") == ("fda", ["a", "b"])
    assert split_path("a/b") == (None, ["a", "b"])


def test_prefix_range_example() -> None:
    assert prefix_range("drugs") == ("drugs/", "drugs0")
    assert prefix_range("fda://drugs") == ("fda://drugs/", "fda://drugs0")


def test_is_under_is_segment_wise() -> None:
    assert is_under("drugs/semaglutide/label", "drugs")
    assert is_under("drugs", "drugs")
    assert is_under("drugs/semaglutide", "drugs/semaglutide")
    assert not is_under("drugs/semaglutide", "drugs/sema")
    assert not is_under("drugs-x/y", "drugs")
    assert not is_under("drugs", "drugs/semaglutide")


_segment = st.text(alphabet=st.sampled_from("ab/.-_0:é€ Z"), min_size=1, max_size=6)
_paths = st.lists(_segment, min_size=1, max_size=4).map("/".join)


@settings(max_examples=500, deadline=None)
@given(_paths, _paths)
def test_prefix_range_matches_is_under(subject: str, prefix: str) -> None:
    """Within the range exactly when strictly under (as UTF-8 bytes, SQLite's order)."""
    lo, hi = prefix_range(prefix)
    in_range_str = lo <= subject < hi
    in_range_bytes = lo.encode() <= subject.encode() < hi.encode()
    strictly_under = is_under(subject, prefix) and subject != prefix
    assert in_range_str == strictly_under
    assert in_range_bytes == strictly_under
