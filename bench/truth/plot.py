"""A grouped bar chart of accuracy per world family and lens, as hand-written SVG.

No plotting dependency: the bench runs in the project's venv as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PALETTE = (
    "#7f7f7f",
    "#1f77b4",
    "#aec7e8",
    "#ff7f0e",
    "#ffbb78",
    "#2ca02c",
    "#98df8a",
    "#9467bd",
    "#c5b0d5",
    "#d62728",
)


def svg(summary: dict[str, Any], lenses: Sequence[str]) -> str:
    """Accuracy (%) bars: one group per family, one bar per lens, a legend on the right."""
    families = list(summary)
    bar, gap, left, top, height = 9, 18, 40, 20, 220
    group = bar * len(lenses) + gap
    width = left + group * len(families) + 130
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + 40}" '
        'font-family="sans-serif" font-size="10">',
        f'<rect width="{width}" height="{top + height + 40}" fill="white"/>',
    ]
    for pct in range(0, 101, 20):
        y = top + height - pct * height / 100
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + group * len(families)}" '
            f'y2="{y:.1f}" stroke="#ddd"/>'
        )
        out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{pct}</text>')
    for g, family in enumerate(families):
        x0 = left + g * group + gap / 2
        for i, lens in enumerate(lenses):
            acc = summary[family][lens]["accuracy"]
            h = acc * height
            out.append(
                f'<rect x="{x0 + i * bar:.1f}" y="{top + height - h:.1f}" width="{bar - 1}" '
                f'height="{h:.1f}" fill="{PALETTE[i % len(PALETTE)]}">'
                f"<title>{family} {lens}: {acc * 100:.1f}%</title></rect>"
            )
        out.append(
            f'<text x="{x0 + bar * len(lenses) / 2:.1f}" y="{top + height + 14}" '
            f'text-anchor="middle">{family}</text>'
        )
    lx = left + group * len(families) + 10
    for i, lens in enumerate(lenses):
        y = top + i * 14
        out.append(
            f'<rect x="{lx}" y="{y}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        out.append(f'<text x="{lx + 14}" y="{y + 9}">{lens}</text>')
    out.append(
        f'<text x="{left}" y="{top + height + 32}">accuracy (%) per world family and lens</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
