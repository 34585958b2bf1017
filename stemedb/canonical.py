"""RFC 8785 JSON Canonicalization Scheme (JCS), written out in full.

The canonical form is the interoperability contract of record ids and
signatures (see data-model.md), so it is implemented here rather than taken
from a dependency, and tested against the RFC's own examples:

* objects: members sorted by the UTF-16 code units of their names, no
  whitespace anywhere;
* strings: only `"`, `\\` and the control characters below U+0020 are
  escaped (`\\b \\t \\n \\f \\r` in short form, the rest as lower-case
  `\\u00xx`); everything else, non-ASCII included, is written as is (UTF-8);
* numbers: the ECMAScript `Number.prototype.toString` form of the IEEE-754
  double (`1.0` → `1`, `1e-7` → `1e-7`, `1e21` → `1e+21`, `-0` → `0`).

Decisions where Python differs from JSON's number model:

* Python `int`s with an absolute value up to 2**53 are written exactly.
  Larger ints are first converted to the nearest double and written as
  ECMAScript would write that double (so `2**53 + 1` is written
  `9007199254740992`): a JavaScript client parsing the same body sees the
  same value and therefore produces the same bytes. Ints too large for a
  double raise ValueError.
* NaN and the infinities are not JSON and raise ValueError.
* Lone UTF-16 surrogates in strings are not I-JSON and raise ValueError.
* `bool`, `None`, `str`, `int`, `float`, mappings with `str` keys and lists
  or tuples are accepted; anything else raises TypeError.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, cast

__all__ = ["canonical_bytes", "canonical_json", "canonical_json_with_member", "format_number"]

MAX_SAFE_INTEGER = 2**53

_encode_string = cast(Any, json.encoder).encode_basestring
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def canonical_json(value: Any) -> str:
    """The RFC 8785 canonical JSON text of `value`.

    Tries the fast writer (`_fast`) and, if it raises for any reason, runs the
    reference writer (`_write`), which either produces the same text or raises
    the documented error: the fast path never decides what an error is.
    """
    try:
        text = _fast(value)
    except Exception:
        return _reference(value)
    if not text.isascii() and _LONE_SURROGATE.search(text):
        return _reference(value)  # raises the reference's ValueError
    return text


def canonical_json_with_member(value: Any, name: str, member: Any) -> tuple[str, str]:
    """`(canonical_json(value), canonical_json({**value, name: member}))`, sharing
    the work: a signed record is its unsigned form plus `signatures`, and both
    texts are needed (the signed digest and the record id). Each member value
    is serialised once; errors are those of the two separate calls, in order."""
    if type(value) is dict and type(name) is str and name not in value:
        try:
            texts = {key: _fast(item) for key, item in value.items()}
            texts[name] = _fast(member)
            extended = _join_members(texts)
            if extended.isascii() or not _LONE_SURROGATE.search(extended):
                del texts[name]
                return _join_members(texts), extended
        except Exception:
            pass
    return canonical_json(value), canonical_json({**value, name: member})


def canonical_bytes(value: Any) -> bytes:
    """`canonical_json(value)` encoded as UTF-8."""
    return canonical_json(value).encode("utf-8")


def format_number(value: int | float) -> str:
    """A number in ECMAScript `Number.prototype.toString` form (RFC 8785 §3.2.2.3)."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return str(int(value))
        try:
            value = float(value)
        except OverflowError:
            raise ValueError("integer too large for an IEEE-754 double") from None
    return _format_float(float(value))


def _format_float(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not a valid JSON number")
    if x == 0:
        return "0"  # also -0
    # repr() gives the shortest digit string that round-trips, choosing the
    # closest one on ties: the same digits ECMAScript picks. Only the layout
    # (where the point goes, when to use an exponent) differs, so re-lay it.
    text = repr(x)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    all_digits = (int_part + frac_part).lstrip("0")
    digits = all_digits.rstrip("0")
    # value = int(digits) * 10**scale; ECMAScript's n is the position of the
    # decimal point relative to the first digit: value = 0.d1d2...dk * 10**n.
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
        exp_out = ("+" if e >= 0 else "-") + str(abs(e))
        body = (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + exp_out
    return sign + body


def _utf16_key(name: str) -> bytes:
    return name.encode("utf-16-be", "surrogatepass")


def _write_string(text: str, parts: list[str]) -> None:
    if not text.isascii() and _LONE_SURROGATE.search(text):
        raise ValueError("string contains a lone UTF-16 surrogate, which is not valid I-JSON")
    parts.append(_encode_string(text))


def _write(value: Any, parts: list[str]) -> None:
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        _write_string(value, parts)
    elif isinstance(value, int | float):
        parts.append(format_number(value))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"object member names must be strings, got {type(key).__name__}")
        parts.append("{")
        first = True
        for key in sorted(value, key=_utf16_key):
            if not first:
                parts.append(",")
            first = False
            _write_string(key, parts)
            parts.append(":")
            _write(value[key], parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _write(item, parts)
        parts.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def _reference(value: Any) -> str:
    """The reference writer: simple, checks everything as it goes."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


# ---------------------------------------------------------------- fast writer
#
# The same output as `_write` for the common types, written for speed: exact
# type dispatch (subclasses go to `_write`), member order cached per key
# tuple, lone surrogates checked once on the whole text by the caller, and
# floats laid out by `_format_float` only when `repr` differs from ECMAScript.
# Anything unusual raises, and the caller then reruns the reference writer.

_ORDER_CACHE_MAX = 4096
_ORDER_KEYS_MAX = 64
_ORDER_KEY_CHARS_MAX = 2048  # the cache keeps its keys alive: only small key sets
# key tuple (insertion order) → ((key, '"key":'), ...) in canonical order. Only
# plain-str key tuples are stored; a lookup with str-subclass keys that compare
# equal gets the same answer the reference computes for them (unless the
# subclass redefines equality or `encode`, which no JSON value does).
_ORDER: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}


def _member_order(keys: tuple[Any, ...]) -> tuple[tuple[str, str], ...]:
    for key in keys:
        if type(key) is not str:
            raise TypeError("not a plain str key")  # the reference names the problem
    # For ASCII names code point order is UTF-16 code unit order: no encoding needed.
    ascii_only = all(key.isascii() for key in keys)
    ordered = sorted(keys) if ascii_only else sorted(keys, key=_utf16_key)
    order = tuple((key, _encode_string(key) + ":") for key in ordered)
    if len(keys) <= _ORDER_KEYS_MAX and sum(map(len, keys)) <= _ORDER_KEY_CHARS_MAX:
        if len(_ORDER) >= _ORDER_CACHE_MAX:
            _ORDER.clear()
        _ORDER[keys] = order
    return order


def _join_members(texts: dict[str, str]) -> str:
    """`{...}` from member value texts (plain str keys)."""
    keys = tuple(texts)
    order = _ORDER.get(keys) or _member_order(keys)
    return "{" + ",".join([prefix + texts[key] for key, prefix in order]) + "}"


def _fast(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _encode_string(value)  # type: ignore[no-any-return]
    if kind is dict:
        keys = tuple(value)
        order = _ORDER.get(keys) or _member_order(keys)
        return "{" + ",".join([prefix + _fast(value[key]) for key, prefix in order]) + "}"
    if kind is float:
        text = repr(value)
        # repr == ECMAScript unless it has an exponent, is integral (`1.0`,
        # `-0.0`) or is not finite (`inf`, `nan`): those take the full layout.
        if "e" in text or "n" in text or text.endswith(".0"):
            return _format_float(value)
        return text
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return str(value)
        return format_number(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is list:
        return "[" + ",".join([_fast(item) for item in value]) + "]"
    return _reference(value)
