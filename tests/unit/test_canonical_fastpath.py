"""The fast canonical writer equals the simple reference one, output and errors.

`stemedb.canonical` writes the common types through a fast path and falls
back to its reference writer on anything unusual. These property tests keep
an independent copy of that reference (the original, straightforward
implementation) and check, on generated values including lone surrogates,
non-BMP characters, -0.0, huge and tiny floats and ints, subclasses, tuples
and bad keys, that `canonical_json` and `canonical_json_with_member` give
exactly its text, or raise exactly its error.
"""

from __future__ import annotations

import enum
import json
import math
import re
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stemedb.canonical import canonical_json, canonical_json_with_member

# ---- reference: the original implementation, kept verbatim in spirit --------------

_MAX_SAFE = 2**53
_encode = cast(Any, json.encoder).encode_basestring
_LONE = re.compile("[\ud800-\udfff]")


def _ref_number(value: int | float) -> str:
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    if isinstance(value, int):
        if -_MAX_SAFE <= value <= _MAX_SAFE:
            return str(int(value))
        try:
            value = float(value)
        except OverflowError:
            raise ValueError("integer too large for an IEEE-754 double") from None
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not a valid JSON number")
    if x == 0:
        return "0"
    text = repr(x)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    all_digits = (int_part + frac_part).lstrip("0")
    digits = all_digits.rstrip("0")
    scale = exponent - len(frac_part) + (len(all_digits) - len(digits))
    k = len(digits)
    n = k + scale
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        body = (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + f"{e:+d}"
    return sign + body


def _ref_string(text: str, parts: list[str]) -> None:
    if not text.isascii() and _LONE.search(text):
        raise ValueError("string contains a lone UTF-16 surrogate, which is not valid I-JSON")
    parts.append(_encode(text))


def _ref_write(value: Any, parts: list[str]) -> None:
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        _ref_string(value, parts)
    elif isinstance(value, int | float):
        parts.append(_ref_number(value))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"object member names must be strings, got {type(key).__name__}")
        parts.append("{")
        for index, key in enumerate(
            sorted(value, key=lambda name: name.encode("utf-16-be", "surrogatepass"))
        ):
            if index:
                parts.append(",")
            _ref_string(key, parts)
            parts.append(":")
            _ref_write(value[key], parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _ref_write(item, parts)
        parts.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def reference_json(value: Any) -> str:
    parts: list[str] = []
    _ref_write(value, parts)
    return "".join(parts)


def outcome(func: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", result) or ("error", (exception type, message))."""
    try:
        return ("ok", func())
    except (TypeError, ValueError) as exc:
        return ("error", (type(exc), str(exc)))


# ---- generated inputs --------------------------------------------------------------


class Colour(enum.StrEnum):
    Red = "red"


class Tier(enum.IntEnum):
    Two = 2


class Text(str):
    pass


SPECIAL_CHARS = [
    "\ud800",  # lone high surrogate
    "\udfff",  # lone low surrogate
    "\ue000",  # private use: sorts after surrogates in UTF-16, before non-BMP in code points
    "\uffff",
    "\U0001f600",  # non-BMP (a surrogate pair in UTF-16)
    "\U00010000",
    "\x00",
    "\x1f",
    "\x7f",
    "\x85",
    '"',
    "\\",
    "/",
    "é",
    "a",
    "Z",
]
chars = st.one_of(st.sampled_from(SPECIAL_CHARS), st.characters())
texts = st.lists(chars, max_size=8).map("".join)
ascii_texts = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", max_size=12)
keys = st.one_of(ascii_texts, texts)

special_floats = st.sampled_from(
    [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        1e21,
        1e-7,
        1e-6,
        1e16,
        1e15,
        123456789012345680000.0,
        5e-324,
        -5e-324,
        1.7976931348623157e308,
        9007199254740992.0,
        0.1 + 0.2,
        math.inf,
        -math.inf,
        math.nan,
    ]
)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), special_floats)
ints = st.one_of(
    st.integers(),
    st.integers(min_value=2**53 - 3, max_value=2**53 + 3),
    st.integers(min_value=-(2**53) - 3, max_value=-(2**53) + 3),
    st.sampled_from([2**64, -(2**70), 10**308, 10**309, -(10**400), 0, -1]),
)
odd_scalars = st.sampled_from([Colour.Red, Tier.Two, Text("x\ud800"), Text("plain"), b"bytes"])
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts, odd_scalars)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(keys, children, max_size=6),
        st.dictionaries(keys, children, max_size=3).map(OrderedDict),
        st.dictionaries(st.one_of(keys, st.integers(), st.none()), children, max_size=3),
    )


json_values = st.recursive(scalars, _containers, max_leaves=25)
# Mostly plain JSON (the fast path), so the comparisons are not all about errors.
plain_values = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, floats, texts),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=25,
)


@settings(max_examples=600)
@given(st.one_of(json_values, plain_values))
def test_canonical_json_equals_the_reference(value: Any) -> None:
    assert outcome(lambda: canonical_json(value)) == outcome(lambda: reference_json(value))


@settings(max_examples=300)
@given(st.one_of(json_values, plain_values))
def test_canonical_json_is_the_same_when_called_again(value: Any) -> None:
    """The member-order cache does not change a second answer."""
    first = outcome(lambda: canonical_json(value))
    assert outcome(lambda: canonical_json(value)) == first


@settings(max_examples=600)
@given(floats)
def test_numbers_equal_the_reference(value: float) -> None:
    assert outcome(lambda: canonical_json(value)) == outcome(lambda: reference_json(value))
    assert outcome(lambda: canonical_json([value, {"x": value}])) == outcome(
        lambda: reference_json([value, {"x": value}])
    )


def _binade(e: int) -> st.SearchStrategy[float]:
    high = sys.float_info.max if e == 1023 else 2.0 ** (e + 1)
    return st.floats(min_value=2.0**e, max_value=high, allow_infinity=False)


@given(st.integers(min_value=-1074, max_value=1023).flatmap(_binade))
def test_floats_across_every_binade_equal_the_reference(value: float) -> None:
    for x in (value, -value):
        assert canonical_json(x) == reference_json(x)


def _pair_reference(value: Any, name: Any, member: Any) -> tuple[str, str]:
    return reference_json(value), reference_json({**value, name: member})


@settings(max_examples=600)
@given(
    st.one_of(
        st.dictionaries(keys, plain_values, max_size=8),
        st.dictionaries(keys, json_values, max_size=5),
        st.dictionaries(keys, json_values, max_size=3).map(OrderedDict),
    ),
    st.one_of(st.just("signatures"), keys),
    st.one_of(plain_values, json_values),
)
def test_with_member_equals_two_reference_calls(value: Any, name: str, member: Any) -> None:
    got = outcome(lambda: canonical_json_with_member(value, name, member))
    assert got == outcome(lambda: _pair_reference(value, name, member))


def test_with_member_when_the_name_is_already_there() -> None:
    value = {"a": 1, "signatures": "old"}
    assert canonical_json_with_member(value, "signatures", [1]) == (
        '{"a":1,"signatures":"old"}',
        '{"a":1,"signatures":[1]}',
    )


def test_with_member_error_order_is_the_unsigned_text_first() -> None:
    """A problem in the object itself is reported before one in the new member."""
    with pytest.raises(ValueError, match="lone UTF-16 surrogate"):
        canonical_json_with_member({"a": "\ud800"}, "z", math.nan)
    with pytest.raises(ValueError, match="not a valid JSON number"):
        canonical_json_with_member({"a": "ok"}, "z", math.nan)


def test_member_order_is_utf16_for_non_bmp_names() -> None:
    """U+E000 sorts after U+1F600 by code point but before it by UTF-16 code unit."""
    value = {"\U0001f600": 1, "\ue000": 2, "a": 3}
    assert canonical_json(value) == '{"a":3,"\U0001f600":1,"\ue000":2}'
    assert canonical_json(value) == reference_json(value)


def test_deep_nesting_falls_back_to_the_reference() -> None:
    """The fast writer uses more stack per level; the reference takes over."""
    value: Any = 1
    for _ in range(400):
        value = [value]
    assert canonical_json(value) == reference_json(value)
