"""The Markdown report of one run: the targets table, then one table per section."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.stats import markdown_table

Getter = Callable[[dict[str, Any]], Any]


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


# (id, what, path into results, ">=" or "<=", threshold, unit)
Target = tuple[str, str, tuple[str, ...], str, float, str]
TARGETS: list[Target] = [
    ("1a", "HTTP batch import / floor", ("ingest", "http_batch_1_vs_floor"), ">=", 0.6, "×"),
    ("1b", "`stemedb import --db` / floor", ("ingest", "cli_import_db_vs_floor"), ">=", 0.8, "×"),
    ("1c", "HTTP batch import, assertions/s", ("ingest", "http_batch_1_rps"), ">=", 5000, "/s"),
    (
        "2a",
        "single writes, 32 clients, acked durable/s",
        ("writes", "gc_32", "acked_writes_per_s"),
        ">=",
        1500,
        "/s",
    ),
    ("2b", "single writes, 32 clients, p99", ("writes", "gc_32", "p99_ms"), "<=", 50, "ms"),
    ("3a", "authority (10 cand.), 32 clients", ("queries", "authority", "rps"), ">=", 2000, "q/s"),
    (
        "3b",
        "authority (10 cand.), 32 clients, p99",
        ("queries", "authority", "p99_ms"),
        "<=",
        20,
        "ms",
    ),
    (
        "4a",
        "single-write p50 (1 client), max/min over sizes",
        ("scale", "flatness_p50", "write_c1"),
        "<=",
        1.3,
        "×",
    ),
    (
        "4b",
        "point query p50 (1 client), max/min over sizes",
        ("scale", "flatness_p50", "get_c1"),
        "<=",
        1.3,
        "×",
    ),
    ("5a", "server RSS, 10-candidate lens load", ("queries", "rss_lens_load_mb"), "<=", 150, "MB"),
    (
        "5a'",
        "server RSS, all query loads (incl. 1,000-cand. pair, point reads)",
        ("queries", "rss_max_under_load_mb"),
        "<=",
        150,
        "MB",
    ),
    ("5b", "start-up to ready, loaded database", ("startup", "loaded_s"), "<=", 2.0, "s"),
    ("6", "mixed 80/20 load, errors", ("mixed", "errors"), "<=", 0, ""),
]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for tid, what, path, op, threshold, unit in TARGETS:
        value = _get(results, *path)
        if value is None:
            continue
        met = value >= threshold if op == ">=" else value <= threshold
        rows.append(
            {
                "#": tid,
                "measure": what,
                "result": f"{value:,}{' ' + unit if unit and unit != '×' else unit}",
                "target": f"{op.replace('>=', '≥').replace('<=', '≤')} {threshold:,}"
                + (f" {unit}" if unit and unit != "×" else unit),
                "met": "**yes**" if met else "**NO**",
            }
        )
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    return markdown_table([{c: _fmt(r.get(c)) for c in columns} for r in rows], columns)


def render(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    out = [f"# StemeDB benchmark run {results.get('stamp', '')}", ""]
    out.append(
        f"{m.get('cpu_model')} × {m.get('nproc')} cores, {m.get('ram_gib')} GiB RAM, "
        f"{m.get('disk')}, Linux {m.get('kernel')}, Python {m.get('python')}, "
        f"SQLite {m.get('sqlite')}; fsync probe p50 {m.get('fsync_p50_ms')} ms; "
        f"load average at start {m.get('loadavg_start')}, at end {results.get('loadavg_end')}; "
        f"git {results.get('git', {}).get('head')} "
        f"({results.get('git', {}).get('dirty_files')} files modified in the work tree; "
        f"product code changed during the run: {results.get('code_changed_during_run')})."
    )
    out += ["", f"Command: `{results.get('command')}`", "", "## Targets", ""]
    out.append(markdown_table(targets(results), ["#", "measure", "result", "target", "met"]))
    ing = results.get("ingest")
    if ing:
        out += ["", f"## Ingest ({ing['records']:,} signed assertions, {ing['rounds']} rounds)", ""]
        rows = [
            {"method": k, "records/s": ing[f"{k}_rps"], "× floor": ing.get(f"{k}_vs_floor", 1.0)}
            for k in ("floor", "store_bulk", "http_batch_1", "http_batch_2", "cli_import_db")
        ]
        out.append(_table(rows, ["method", "records/s", "× floor"]))
        out.append(
            f"\nServer CPU during HTTP batch import: {ing['http_batch_1_server_cpu_cores']} cores "
            f"(1 client), {ing['http_batch_2_server_cpu_cores']} cores (2 clients). In process, "
            f"32 threads × 1 record: group commit {ing['store_group_commit_rps']:,}/s "
            f"(mean batch {ing['store_group_commit_mean_batch']}) vs one per transaction "
            f"{ing['store_one_per_txn_rps']:,}/s ({ing['store_group_commit_gain']}×)."
        )
    wr = results.get("writes")
    if wr:
        out += [
            "",
            f"## Single writes (wrk, 32 connections, {wr['seconds']} s × {wr['rounds']} rounds)",
            "",
        ]
        rows = []
        for name in (
            "gc_32",
            "nogc_32",
            "gc_8",
            "gc_64",
            "gc_32_unpinned",
            "gc_32_unadmitted",
            "gc_32_pinned",  # runs before 2026-11-27 12:00
        ):
            if name in wr:
                rows.append({"config": name, **wr[name]})
        py = wr.get("python_client_gc_32")
        if py:
            rows.append({"config": "gc_32, Python client", **py})
        cols = [
            "config",
            "acked_writes_per_s",
            "p50_ms",
            "p99_ms",
            "mean_group_commit_batch",
            "server_cpu_cores",
            "server_cpu_ms_per_req",
            "client_cpu_cores",
            "others_cpu_cores",
            "errors",
        ]
        out.append(_table(rows, cols))
        out.append(
            f"\nGroup commit gain (gc_32 / nogc_32, median of rounds): {wr['group_commit_gain']}×"
        )
    q = results.get("queries")
    if q:
        out += [
            "",
            f"## Queries ({q['assertions']:,} assertions, wrk 32 connections, "
            f"{q['seconds']} s × {q['rounds']} rounds)",
            "",
        ]
        rows = [
            {"query": k, **q[k]}
            for k in (
                "authority",
                "recency",
                "consensus",
                "skeptic",
                "authority_wide",
                "get_by_hash",
                "health",
            )
            if k in q
        ]
        cols = [
            "query",
            "rps",
            "p50_ms",
            "p99_ms",
            "server_cpu_cores",
            "server_cpu_ms_per_req",
            "client_cpu_cores",
            "others_cpu_cores",
            "errors",
        ]
        out.append(_table(rows, cols))
        out.append(
            f"\nServer RSS: idle {q['rss_idle_mb']} MB, under the 10-candidate lens load "
            f"{q.get('rss_lens_load_mb')} MB, max under all loads "
            f"{q['rss_max_under_load_mb']} MB, at the end {q['rss_end_mb']} MB. "
            f"Database file {q['db_bytes'] / 1e6:,.0f} MB."
        )
    rt = results.get("read_threads")
    if rt:
        out += ["", f"## Read thread sweep (authority, {rt['assertions']:,} assertions)", ""]
        rows = [{"STEMEDB_THREADS": t, **v} for t, v in rt.items() if isinstance(v, dict)]
        cols = ["STEMEDB_THREADS", "rps", "p50_ms", "p99_ms", "server_cpu_cores"]
        out.append(_table(rows, [*cols, "server_cpu_ms_per_req", "server_sys_share", "errors"]))
    st = results.get("startup")
    if st:
        out += ["", f"## Start-up and maintenance ({st['assertions']:,} assertions)", ""]
        out.append(
            f"Start-up to ready (median of {len(st['loaded_runs'])}): loaded "
            f"{st['loaded_s']} s {st['loaded_runs']}, empty {st['empty_s']} s {st['empty_runs']}."
            + (
                f" Loaded, page cache dropped first: {st['cold_s']} s {st['cold_runs']}."
                if "cold_s" in st
                else ""
            )
        )
        v, r = st.get("verify_full"), st.get("reindex")
        if v and r:
            out.append(
                f"\n`stemedb verify --full`: {v['frames']:,} frames in {v['wall_s']} s = "
                f"{v['frames_per_s']:,} frames/s (ok: {v['ok']}). `stemedb reindex`: "
                f"{r['frames']:,} frames in {r['wall_s']} s = {r['frames_per_s']:,} frames/s."
            )
    sc = results.get("scale")
    if sc:
        out += ["", f"## Scale ({sc['seconds']} s × {sc['rounds']} rounds per probe and size)", ""]
        rows = []
        for probe in ("write_c1", "write_c32", "get_c1", "get_c32", "authority_c1"):
            row: dict[str, Any] = {"probe": probe}
            for n in sc["sizes"]:
                cell = sc[str(n)][probe]
                row[f"{n:,}"] = f"{cell['p50_ms']} / {cell['p99_ms']} ms, {cell['rps']:,.0f}/s"
            row["p50 max/min"] = sc["flatness_p50"][probe]
            row["p99 max/min"] = sc["flatness_p99"][probe]
            rows.append(row)
        cols = ["probe", *[f"{n:,}" for n in sc["sizes"]], "p50 max/min", "p99 max/min"]
        out.append(markdown_table(rows, cols))
        out.append("\nCells: p50 / p99 latency, requests/s.")
    mx = results.get("mixed")
    if mx:
        out += ["", f"## Mixed 80/20 ({mx['seconds']} s, {mx['clients']} clients)", ""]
        rows = [{"class": k, **mx[k]} for k in ("read", "write")]
        out.append(
            _table(
                rows,
                [
                    "class",
                    "requests",
                    "per_s",
                    "share",
                    "p50_ms",
                    "p99_ms",
                    "max_ms",
                    "http_errors",
                ],
            )
        )
        out.append(
            f"\nTransport errors {mx['transport_errors']}; server {mx['server_cpu_cores']} cores, "
            f"Python client {mx['client_cpu_cores']} cores; RSS max {mx['server_rss_max_mb']} MB."
        )
    prof = results.get("profile")
    if prof:
        out += ["", "## Profile (py-spy on the server under wrk load)", ""]
        for name, p in prof.items():
            if not isinstance(p, dict) or "self" not in p:
                continue
            gil = ""
            if p.get("gil_only"):
                gil = ", GIL holder only"
                if p.get("gil_held_share") is not None:
                    gil += (
                        f"; GIL held {100 * p['gil_held_share']:.0f} % of the time,"
                        f" {p.get('gil_ms_per_req')} ms per request"
                    )
            out.append(
                f"\n**{name}** ({p['samples']:,} samples at {p.get('load_rps')} req/s"
                f"{gil}): top self time"
            )
            out.append("")
            out.append(markdown_table(p["self"][:12], ["function", "pct"]))
            if p.get("by_package"):
                out.append("\nSelf time by package:\n")
                out.append(markdown_table(p["by_package"], ["package", "pct"]))
    return "\n".join(out) + "\n"
