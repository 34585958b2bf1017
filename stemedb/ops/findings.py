"""A doctor finding: what a check saw, how bad it is, and what to do about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

RUNBOOK = "docs/operations/runbooks/server-wont-start.md"
DISK_RUNBOOK = "docs/operations/runbooks/disk-full.md"


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok | warn | fail | skip
    detail: str
    action: str = ""


def to_json(findings: list[Finding]) -> dict[str, object]:
    return {
        "ok": not any(f.status == "fail" for f in findings),
        "findings": [asdict(f) for f in findings],
    }
