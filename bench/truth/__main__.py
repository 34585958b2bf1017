"""`python -m bench.truth`: lens quality on seeded worlds with known truth (issue 18).

    .venv/bin/python -m bench.truth                    # 4 families x seeds 1,2,3 (a few minutes)
    .venv/bin/python -m bench.truth --seeds 1 --families spam
    .venv/bin/python -m bench.truth --svg docs/lens-quality.svg --json bench/truth/results.json

Prints the Markdown table (world family x lens: accuracy and ECE, mean over
seeds). Same seeds, same table, bit for bit: worlds, keys and signatures
derive from the seed and no lens answer depends on the wall clock (every
query gives `as_of`, except `truth` at the world's end, asked at the head: the
reliability table is a function of the journal, not of the clock).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.server import server
from bench.truth import run
from bench.truth.plot import svg
from bench.truth.world import FAMILIES, Size, generate

COLUMNS = ("majority", *run.LENSES)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarise(per_world: dict[str, dict[str, dict[str, dict[str, float]]]]) -> dict[str, Any]:
    """family → lens → mean accuracy / ECE over seeds."""
    out: dict[str, Any] = {}
    for family, seeds in per_world.items():
        out[family] = {
            lens: {
                metric: mean([seeds[s][lens].get(metric, 0.0) for s in sorted(seeds)])
                for metric in ("accuracy", "ece", "ms_per_pair")
            }
            for lens in COLUMNS
        }
    return out


def markdown(summary: dict[str, Any], seeds: list[int], sizes: dict[str, Any]) -> str:
    head = "| world | " + " | ".join(COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    lines = [
        f"Accuracy % (ECE) per world family, mean over seeds {seeds}; best per row in bold.",
        "",
        head,
        rule,
    ]
    for family, row in summary.items():
        top = max(row[lens]["accuracy"] for lens in COLUMNS)
        cells = []
        for lens in COLUMNS:
            acc, err = row[lens]["accuracy"], row[lens]["ece"]
            text = f"{acc * 100:.1f} ({err:.2f})"
            cells.append(f"**{text}**" if acc == top else text)
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    cost = {
        lens: mean([row[lens].get("ms_per_pair", 0.0) for row in summary.values()])
        for lens in run.LENSES
    }
    lines += [
        "",
        "Query cost, ms per pair (wall clock, so not reproducible; whole-subtree queries): "
        + ", ".join(f"{lens} {ms:.1f}" for lens, ms in cost.items()),
        "",
        "Sizes (per seed): " + json.dumps(sizes, sort_keys=True),
    ]
    return "\n".join(lines)


def _without_timings(per_world: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    return {
        "seeds": seeds,
        "per_world": {
            family: {
                seed: {
                    lens: {k: v for k, v in row.items() if k != "ms_per_pair"}
                    for lens, row in table.items()
                }
                for seed, table in by_seed.items()
            }
            for family, by_seed in per_world.items()
        },
    }


def _size(text: str) -> Size:
    """`key=value,...` over the default Size (numbers keep the field's type)."""
    changes: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        default = getattr(Size(), key)  # AttributeError names an unknown field
        changes[key] = type(default)(value)
    return replace(Size(), **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.truth", description=__doc__)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument(
        "--size", default="", help="world shape overrides, e.g. sources=24,coverage=0.35,domain=5"
    )
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument("--svg", type=Path, help="write the accuracy plot here")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    size = _size(args.size)
    per_world: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    sizes: dict[str, Any] = {}
    started = time.perf_counter()
    with server(env=run.SERVER_ENV) as srv:
        for family in families:
            for seed in seeds:
                world = generate(family, seed, size)
                written = run.write_world(srv, world)
                sizes.setdefault(family, {"pairs_queried": len(world.queries), **written})
                per_world.setdefault(family, {})[str(seed)] = run.score_world(srv, world)
                print(f"{family} seed {seed}: done", file=sys.stderr, flush=True)
    summary = summarise(per_world)
    table = markdown(summary, seeds, {"size": size.__dict__, "written": sizes})
    print(table)
    print(f"(wall clock {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.json:  # without the timings, so the file is the same for the same seeds
        args.json.write_text(json.dumps(_without_timings(per_world, seeds), indent=1) + "\n")
    if args.svg:
        args.svg.write_text(svg(summary, COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
