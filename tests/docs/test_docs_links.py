"""Every link and every `file.md` a document names must exist.

A reader who follows `forensics.md`'s pointer to `storage.md` and finds
nothing stops trusting the rest of the page; this test keeps the docs' cross
references honest as files move.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_NAMED_MD = re.compile(r"`([\w./-]+\.md)`")


def _exists(doc: Path, target: str) -> bool:
    """A target resolves relative to the document, to docs/, or to the repository root."""
    target = target.split("#", 1)[0]
    if not target:
        return True
    candidates = [doc.parent / target, ROOT / "docs" / target, ROOT / target]
    if "/" not in target:  # a bare name: anywhere under docs/
        candidates += list((ROOT / "docs").rglob(target))
    return any(path.exists() for path in candidates)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_named_page_exists(doc: Path) -> None:
    text = doc.read_text("utf-8")
    missing = [
        target
        for target in _LINK.findall(text)
        if not re.match(r"^[a-z]+:", target) and not _exists(doc, target)
    ]
    missing += [name for name in _NAMED_MD.findall(text) if not _exists(doc, name)]
    assert not missing, f"{doc.relative_to(ROOT)} names pages that do not exist: {missing}"
