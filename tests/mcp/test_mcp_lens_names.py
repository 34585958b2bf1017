"""The MCP tools offer exactly the server's lenses: a new lens cannot be forgotten there."""

from __future__ import annotations

from typing import get_args

from stemedb.lenses.registry import LENS_NAMES, NOT_INNER
from stemedb.mcp.tools import Inner, Lens


def test_the_lens_enum_is_the_registry() -> None:
    assert set(get_args(Lens)) == set(LENS_NAMES)


def test_the_inner_lens_enum_is_every_lens_allowed_inside_epoch() -> None:
    assert set(get_args(Inner)) == set(LENS_NAMES) - NOT_INNER
