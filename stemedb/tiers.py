"""Source classes (authority tiers): lower number = higher authority."""

from __future__ import annotations

TIER_NAMES: tuple[str, ...] = (
    "Regulatory",
    "Clinical",
    "Observational",
    "Expert",
    "Community",
    "Anecdotal",
)
TIER_BY_NAME: dict[str, int] = {name: tier for tier, name in enumerate(TIER_NAMES)}
