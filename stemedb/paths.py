"""Concept paths: `[scheme://]segment(/segment)*` (data-model.md).

* The scheme (`[a-z][a-z0-9+.-]*`, accepted in any case) is lower-cased.
* One trailing `/` is removed (`drugs/` → `drugs`); `drugs//` is an empty
  segment and rejected.
* Segments are non-empty, contain no control character (C0, DEL, C1) and no
  lone surrogate, and are not `.` or `..`. Nothing else is changed: case and
  inner whitespace are kept exactly as given.
* The normalised path is at most 512 characters.

Prefix matching is segment-wise; `prefix_range` turns a subtree into one
half-open string range usable in an index scan (`subject >= lo AND subject < hi`).
"""

from __future__ import annotations

import re

from stemedb.errors import InvalidRequest

__all__ = [
    "MAX_PATH_LENGTH",
    "PathError",
    "check_path",
    "is_under",
    "leaf",
    "normalise_path",
    "parent",
    "path_scheme",
    "prefix_range",
    "split_path",
]

MAX_PATH_LENGTH = 512
SCHEME_SEPARATOR = "://"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class PathError(ValueError):
    """A concept path is invalid; the message is the problem, without the field name."""


def check_path(text: object) -> str:
    """The normalised form of `text`; PathError (a ValueError) if it is not a concept path."""
    if not isinstance(text, str):
        raise PathError("expected a concept path string")
    if not text:
        raise PathError("must not be empty")
    scheme, sep, rest = text.partition(SCHEME_SEPARATOR)
    if sep:
        if not _SCHEME.fullmatch(scheme):
            raise PathError(
                f"invalid scheme {scheme!r} (expected a letter then letters, digits, '+', '.', '-')"
            )
        prefix = scheme.lower() + SCHEME_SEPARATOR
    else:
        prefix, rest = "", text
    if rest.endswith("/"):
        rest = rest[:-1]
    if not rest:
        raise PathError("has no segment")
    for index, segment in enumerate(rest.split("/")):
        if not segment:
            raise PathError(f"segment {index + 1} is empty")
        if segment in {".", ".."}:
            raise PathError(f"segment {index + 1} is {segment!r}")
        bad = _BAD_CHAR.search(segment)
        if bad:
            raise PathError(
                f"segment {index + 1} contains the control character U+{ord(bad.group()):04X}"
            )
    result = prefix + rest
    if len(result) > MAX_PATH_LENGTH:
        raise PathError(f"longer than {MAX_PATH_LENGTH} characters ({len(result)})")
    return result


def normalise_path(text: str, field: str = "subject") -> str:
    """The normalised concept path; InvalidRequest naming `field` if invalid."""
    try:
        return check_path(text)
    except PathError as exc:
        raise InvalidRequest.field(field, str(exc)) from None


def split_path(path: str) -> tuple[str | None, list[str]]:
    """(scheme or None, segments) of a normalised path."""
    scheme, sep, rest = path.partition(SCHEME_SEPARATOR)
    if sep:
        return scheme, rest.split("/")
    return None, path.split("/")


def path_scheme(path: str) -> str | None:
    """The scheme of a path (`fda` for `fda://drugs/x`), or None."""
    scheme, sep, _ = path.partition(SCHEME_SEPARATOR)
    if sep and _SCHEME.fullmatch(scheme):
        return scheme.lower()
    return None


def _body_start(path: str) -> int:
    scheme, sep, _ = path.partition(SCHEME_SEPARATOR)
    return len(scheme) + len(sep) if sep else 0


def parent(path: str) -> str | None:
    """The path without its last segment; None for a one-segment path."""
    start = _body_start(path)
    cut = path.rfind("/", start)
    if cut < 0:
        return None
    return path[:cut]


def leaf(path: str) -> str:
    """The last segment of a path."""
    start = _body_start(path)
    cut = path.rfind("/", start)
    return path[cut + 1 :] if cut >= 0 else path[start:]


def prefix_range(path: str) -> tuple[str, str]:
    """(lo, hi) such that the strict subtree under `path` is exactly `lo <= s < hi`.

    The path itself is not in the range (callers add `s = path`). '0' is the
    character right after '/', in code points and in UTF-8 bytes alike, so the
    range holds for Python string order and SQLite's BINARY collation.
    """
    return path + "/", path + "0"


def is_under(subject: str, prefix: str) -> bool:
    """True if `subject` is `prefix` or lies in its subtree (segment-wise)."""
    return subject == prefix or subject.startswith(prefix + "/")
