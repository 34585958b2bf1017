"""Where the 1,000-candidate pair's CPU goes: cProfile self time by module, in process.

    python -m bench.profile_wide [--lens authority] [--queries 200] [--no-audit]

Loads the cached `wide-1000-1000` dataset (one pair, 1,000 signed candidates)
into a fresh database through the WSGI app of `bench/profile_hotpath.py`, warms
up, reports CPU per query without the profiler, then profiles `--queries`
queries and prints self time per module (built-ins as `~`) and the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import datasets
from bench.profile_hotpath import _build_app, _call, _drain


def _module(filename: str) -> str:
    if "stemedb/" in filename:
        return "stemedb/" + filename.rsplit("stemedb/", 1)[1]
    if "site-packages/" in filename:
        return filename.rsplit("site-packages/", 1)[1].split("/", 1)[0]
    return filename.rsplit("/", 1)[-1] or "~"


def main() -> None:
    from falcon.testing import create_environ

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lens", default="authority")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-audit", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile-wide-") as tmp:
        (Path(tmp) / "db").mkdir()
        app, store = _build_app(Path(tmp) / "db", audit=not args.no_audit)
        lines = datasets.load_lines(datasets.signed_lines(1000, 1000, prefix="wide"))
        body = "\n".join(lines) + "\n"
        headers = {"Content-Type": "application/x-ndjson"}
        batch = create_environ("/v1/assert/batch", method="POST", body=body, headers=headers)
        assert _call(app, batch).startswith("200"), "loading the pair failed"
        first: dict[str, Any] = json.loads(lines[0])
        query = f"subject={first['subject']}&predicate={first['predicate']}&lens={args.lens}"
        envs = [create_environ("/v1/query", query_string=query) for _ in range(args.queries * 2)]
        for env in envs[:20]:
            _call(app, env)
        _drain(store)
        timed = envs[20 : 20 + args.queries // 2]
        cpu0 = time.thread_time()
        for env in timed:
            _call(app, env)
        _drain(store)
        per_query_ms = (time.thread_time() - cpu0) * 1000 / len(timed)
        print(f"CPU per query (no profiler): {per_query_ms:.2f} ms")
        profile = cProfile.Profile()
        profile.enable()
        for env in envs[-args.queries :]:
            _call(app, env)
        _drain(store)
        profile.disable()
        store.close()
    stats = pstats.Stats(profile)
    by_module: Counter[str] = Counter()
    for (filename, _, _), (_, _, self_s, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_module[_module(filename)] += self_s
    total = sum(by_module.values())
    print("self time by module:")
    for name, seconds in by_module.most_common(20):
        print(f"  {100 * seconds / total:5.1f} %  {name}")
    stats.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
