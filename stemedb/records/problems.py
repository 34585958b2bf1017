"""Turn pydantic validation errors into the API's `{"field", "problem"}` details."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from stemedb.errors import InvalidRequest

ROOT_FIELD = "body"

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

_FIXED: dict[str, str] = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "dict_type": "expected an object",
}


def field_name(loc: tuple[int | str, ...]) -> str:
    """`("signatures", 0, "agent_id")` → `"signatures.0.agent_id"`; `()` → `"body"`."""
    return ".".join(str(part) for part in loc) if loc else ROOT_FIELD


def problem_text(error: Any) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind in _FIXED:
        return _FIXED[kind]
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'the endpoint kind')} (the endpoint's record kind)"
    if kind in {"string_too_long", "too_long"}:
        return f"longer than {ctx.get('max_length')}"
    if kind in {"string_too_short", "too_short"}:
        return f"shorter than {ctx.get('min_length')}"
    message = str(error.get("msg", "invalid"))
    return message[:1].lower() + message[1:]


# The unsigned per-entry timestamp of signature entries before v0.2 (data-model.md §7).
ENTRY_TIMESTAMP_PROBLEM = (
    "not allowed: a signature entry is exactly {agent_id, signature} (an entry timestamp "
    "is not covered by the signature, so it could change the record id; accepted before v0.2)"
)


def _is_entry_extra(error: Any, loc: tuple[int | str, ...]) -> bool:
    return (
        error.get("type") == "extra_forbidden"
        and len(loc) == 3
        and loc[0] == "signatures"
        and isinstance(loc[1], int)
    )


def details_from(exc: ValidationError) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error.get("loc", ()))
        problem = problem_text(error)
        if _is_entry_extra(error, loc):
            problem = (
                ENTRY_TIMESTAMP_PROBLEM
                if loc[2] == "timestamp"
                else "unknown field: a signature entry is exactly {agent_id, signature}"
            )
        item = {"field": field_name(loc), "problem": problem}
        if item not in details:
            details.append(item)
    return details


def invalid_request(details: list[dict[str, Any]]) -> InvalidRequest:
    """One InvalidRequest for all problems; the message is the first, in one line."""
    first = details[0]
    message = f"{first['field']}: {first['problem']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more problem{'s' if len(details) > 2 else ''})"
    return InvalidRequest(" ".join(message.split()), details)


def _has_lone_surrogate(text: str) -> bool:
    return not text.isascii() and _LONE_SURROGATE.search(text) is not None


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether `find_lone_surrogate` would find one: the same walk over the same
    strings, but without building field names (almost every record has none,
    so the names are only worth building once one is known to be there)."""
    search = _LONE_SURROGATE.search  # inlined `_has_lone_surrogate`
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and search(item):
                return True
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and not key.isascii() and search(key):
                    return True
                if isinstance(child, str):
                    if not child.isascii() and search(child):
                        return True
                elif isinstance(child, dict | list):
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
    return False


def find_lone_surrogate(value: Any) -> str | None:
    """The dotted field of the first string (value or key) holding a lone
    surrogate, which JSON parsers let through but I-JSON and UTF-8 forbid.
    Iterative, so any nesting depth the JSON parser accepted is fine."""
    if not _holds_lone_surrogate(value):
        return None
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while stack:
        item, loc = stack.pop()
        if isinstance(item, str):
            if _has_lone_surrogate(item):
                return field_name(loc)
        elif isinstance(item, dict):
            children: list[tuple[Any, tuple[int | str, ...]]] = []
            for key, child in item.items():
                if isinstance(key, str) and _has_lone_surrogate(key):
                    return field_name((*loc, key))
                children.append((child, (*loc, key)))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(child, (*loc, i)) for i, child in enumerate(item)]))
    return None
