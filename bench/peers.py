"""StemeDB side by side with what users would pick instead: Datasette and "just use Postgres".

    python -m bench.peers --size 100000 --seconds 10 --rounds 3 --out docs/bench-results
    python -m bench --only peers --size 100000          # the same, as a section of the suite

Systems, each on the same loaded data (`dbcache.database(n)`: the wide pair
plus n bench claims) and fed the same new claims (the `writes` dataset):

* StemeDB: `stemedb serve` on a copy of the loaded database, the bench's usual
  settings (STEMEDB_SYNC=full, query audit on) with rate limits and the
  new-agent limit off. Writes are signed, verified, hash-chained and durable.
* Datasette (the 1.0 alpha pinned in the `bench` extra) on a SQLite file with
  the same claims as plain rows (WAL mode, SQLite's default synchronous=FULL):
  `/-/insert` with a bearer token, and the latest value as a SQL query.
* Postgres: the Debian package, a throwaway cluster on a unix socket (fsync
  and synchronous_commit on, shared_buffers 256 MB), behind bench.peers_pgapp
  (Falcon on waitress, psycopg, 32 threads, one transaction per request).

Workloads, wrk from one thread (bench.peers_wrk), every round in turn on a
fresh copy of the loaded data for every system, the order of the systems
rotating from round to round:

* health: the cheapest answer of each server (its HTTP stack's ceiling): StemeDB
  `/v1/health`, Datasette `/-/actor.json` (its cheapest JSON answer), the app `/health`;
* reads: StemeDB `recency` and `authority` lens queries; the peers' latest
  value of the same (subject, predicate) pairs (10 candidates each), 32 connections;
* single writes: one claim per request, 32 connections;
* bulk writes: 1,000 claims per request, 4 connections.

Reported: per workload the median over rounds, and the median of the
per-round ratios (a noisy round hits every system in it alike).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench import datasets, dbcache, peers_data, peers_procs, peers_wrk
from bench.server import Server, loadavg, work_dir
from bench.writes import wrk_writes

SYSTEMS = ("stemedb", "datasette", "postgres")
CHUNK = 1000
WRITES_TOTAL = 200_000  # new claims: the first quarter for single writes, the last 70% for bulk
STEMEDB_ENV = {"STEMEDB_NEW_AGENTS_PER_HOUR": "0"}
KEYS = (
    "rate",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "server_cpu_cores",
    "db_cpu_cores",
    "client_cpu_cores",
    "others_cpu_cores",
    "errors",
)


class Files:
    """Every body and path file of the run, written once into `tmp`."""

    def __init__(self, tmp: Path, n: int, writes_total: int) -> None:
        lines = datasets.load_lines(datasets.signed_lines(writes_total, prefix="writes"))
        self.single_count = writes_total // 4
        singles = lines[: self.single_count]
        batch = lines[writes_total * 3 // 10 :]
        self.stemedb_single = wr(tmp / "stemedb-single.ndjson", singles)
        self.stemedb_batch = peers_wrk.write_bodies(
            tmp / "stemedb-batch.bodies", peers_data.ndjson_bodies(batch, CHUNK)
        )
        self.row_single = peers_wrk.write_bodies(
            tmp / "row-single.bodies", peers_data.single_bodies(singles)
        )
        self.row_bulk = peers_wrk.write_bodies(
            tmp / "row-bulk.bodies", peers_data.bulk_bodies(batch, CHUNK)
        )
        recency = dbcache.lens_paths(n, "recency")
        pairs = [_pair(p) for p in recency]
        self.paths = {
            "stemedb_health": wr(tmp / "s-health.paths", ["/v1/health"]),
            "stemedb_recency": wr(tmp / "s-recency.paths", recency),
            "stemedb_authority": wr(tmp / "s-authority.paths", dbcache.lens_paths(n, "authority")),
            "datasette_health": wr(tmp / "d-health.paths", ["/-/actor.json"]),
            "datasette_latest": wr(
                tmp / "d-latest.paths",
                [
                    "/bench/-/query.json?"
                    + urllib.parse.urlencode(
                        {"sql": peers_data.LATEST_SQL, "s": s, "p": p, "_shape": "array"}
                    )
                    for s, p in pairs
                ],
            ),
            "postgres_health": wr(tmp / "p-health.paths", ["/health"]),
            "postgres_latest": wr(
                tmp / "p-latest.paths",
                [
                    "/latest?" + urllib.parse.urlencode({"subject": s, "predicate": p})
                    for s, p in pairs
                ],
            ),
        }


def wr(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(x.rstrip("\n") + "\n" for x in lines))
    return path


def _pair(path: str) -> tuple[str, str]:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    return query["subject"][0], query["predicate"][0]


def _row(result: dict[str, Any], rate: float) -> dict[str, Any]:
    return {**{k: result.get(k) for k in KEYS if k != "rate"}, "rate": rate}


def _acked(result: dict[str, Any]) -> int:
    """Requests answered 2xx during a wrk run."""
    return int(result["requests"] - result["status_errors"])


def _cores(cpu_s: float, result: dict[str, Any]) -> float:
    return round(cpu_s / float(result["duration_s"]), 2)


def _print(system: str, workload: str, r: dict[str, Any]) -> None:
    print(
        f"  {system} {workload}: {r['rate']}/s p50 {r['p50_ms']} p99 {r['p99_ms']} ms"
        f" errors {r['errors']} {r.get('note', '')}",
        flush=True,
    )


def round_stemedb(
    n: int, files: Files, seconds: float, conns: int, bulk: int, env: dict[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    data = dbcache.copy_to(n, dbcache.fresh_dir())
    srv = Server(data, {**STEMEDB_ENV, **env})
    try:
        for kind in ("health", "recency", "authority"):
            r = peers_wrk.run(
                srv, "paths", files.paths[f"stemedb_{kind}"], seconds=seconds, connections=conns
            )
            out[kind] = _row(r, r["ok_per_s"])
        w = wrk_writes(srv, files.stemedb_single, seconds=seconds, count=files.single_count)
        out["single"] = {**_row(w, w["acked_writes_per_s"]), "repeats": w["repeats"]}
        created0 = srv.assertion_count()
        b = peers_wrk.run(
            srv,
            "bodies",
            files.stemedb_batch,
            seconds=seconds,
            connections=bulk,
            path="/v1/assert/batch",
            content_type="application/x-ndjson",
        )
        created = srv.assertion_count() - created0
        ok_rows = round(b["ok_per_s"] * CHUNK, 1)
        # wrk may stop with requests in flight that still commit, so created >= acked
        # rows; fewer means the file wrapped and records were answered `exists`.
        repeats = max(0, int(b["ok_per_s"] * b["duration_s"]) * CHUNK - created)
        out["bulk"] = {**_row(b, ok_rows), "repeats": repeats}
    finally:
        srv.stop()
        shutil.rmtree(data, ignore_errors=True)
    return out


def round_datasette(
    n: int, files: Files, seconds: float, conns: int, bulk: int, secret: str, token: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="peers-datasette-", dir=work_dir()))
    shutil.copyfile(peers_data.sqlite_file(n), tmp / "bench.db")
    srv = peers_procs.datasette(tmp / "bench.db", secret, tmp / "datasette.log")
    try:
        for kind, key in (("health", "datasette_health"), ("latest", "datasette_latest")):
            r = peers_wrk.run(srv, "paths", files.paths[key], seconds=seconds, connections=conns)
            out[kind] = _row(r, r["ok_per_s"])
        path = "/bench/claims/-/insert"
        s = peers_wrk.run(
            srv,
            "bodies",
            files.row_single,
            seconds=seconds,
            connections=conns,
            path=path,
            auth=token,
            count=files.single_count,
        )
        out["single"] = _row(s, s["ok_per_s"])
        b = peers_wrk.run(
            srv,
            "bodies",
            files.row_bulk,
            seconds=seconds,
            connections=bulk,
            path=path,
            auth=token,
        )
        out["bulk"] = _row(b, round(b["ok_per_s"] * CHUNK, 1))
        out["check"] = {"rows_acked": _acked(s) + _acked(b) * CHUNK}
    finally:
        srv.stop()
        if "check" in out:
            conn = sqlite3.connect(tmp / "bench.db")
            (count,) = conn.execute("SELECT count(*) FROM claims").fetchone()
            conn.close()
            out["check"]["rows_added"] = count - (n + dbcache.WIDE_COUNT)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def round_postgres(
    cluster: peers_procs.PgCluster,
    n: int,
    r: int,
    files: Files,
    seconds: float,
    conns: int,
    bulk: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    db = f"round{r}"
    cluster.psql("postgres", "-c", f"CREATE DATABASE {db} TEMPLATE base")
    srv = peers_procs.pg_app(cluster.dsn(db), cluster.base / f"app-{db}.log")
    try:
        for kind, key in (("health", "postgres_health"), ("latest", "postgres_latest")):
            cpu0 = cluster.cpu_s()
            res = peers_wrk.run(srv, "paths", files.paths[key], seconds=seconds, connections=conns)
            out[kind] = _row(res, res["ok_per_s"])
            out[kind]["db_cpu_cores"] = _cores(cluster.cpu_s() - cpu0, res)
        cpu0 = cluster.cpu_s()
        s = peers_wrk.run(
            srv,
            "bodies",
            files.row_single,
            seconds=seconds,
            connections=conns,
            path="/claims/insert",
            count=files.single_count,
        )
        out["single"] = _row(s, s["ok_per_s"])
        out["single"]["db_cpu_cores"] = _cores(cluster.cpu_s() - cpu0, s)
        cpu0 = cluster.cpu_s()
        b = peers_wrk.run(
            srv, "bodies", files.row_bulk, seconds=seconds, connections=bulk, path="/claims/insert"
        )
        out["bulk"] = _row(b, round(b["ok_per_s"] * CHUNK, 1))
        out["bulk"]["db_cpu_cores"] = _cores(cluster.cpu_s() - cpu0, b)
        count = int(cluster.psql(db, "-At", "-c", "SELECT count(*) FROM claims").strip())
        out["check"] = {
            "rows_acked": _acked(s) + _acked(b) * CHUNK,
            "rows_added": count - (n + dbcache.WIDE_COUNT),
        }
    finally:
        srv.stop()
        cluster.psql("postgres", "-c", f"DROP DATABASE {db}")
    return out


def load_postgres(cluster: peers_procs.PgCluster, n: int) -> float:
    """The loaded data into database `base` (COPY, then the index): the rounds' template."""
    started = time.perf_counter()
    cluster.psql("postgres", "-c", "CREATE DATABASE base")
    cluster.psql("base", "-c", peers_data.PG_SCHEMA)
    columns = ", ".join(peers_data.COLUMNS)
    cluster.psql("base", "-c", f"\\copy claims ({columns}) FROM '{peers_data.csv_file(n)}' CSV")
    cluster.psql("base", "-c", peers_data.PG_INDEX)
    cluster.psql("base", "-c", "VACUUM ANALYZE claims")
    cluster.psql("postgres", "-c", "CHECKPOINT")
    return round(time.perf_counter() - started, 1)


def run(
    n: int,
    *,
    seconds: float,
    rounds: int,
    connections: int = 32,
    bulk_connections: int = 4,
    writes_total: int = WRITES_TOTAL,
    systems: tuple[str, ...] = SYSTEMS,
    variants: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """`variants`: more StemeDB servers in every round, `stemedb+NAME` with extra env
    (e.g. the query audit off), to show what a setting costs side by side."""
    variants = variants or {}
    systems = (*systems, *(f"stemedb+{name}" for name in variants))
    missing = peers_procs.ensure_setup()
    if missing:
        raise RuntimeError("; ".join(missing))
    per: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in systems}
    out: dict[str, Any] = {
        "assertions": n + dbcache.WIDE_COUNT,
        "seconds": seconds,
        "rounds": rounds,
        "connections": connections,
        "bulk_connections": bulk_connections,
        "chunk": CHUNK,
        "systems": list(systems),
        "variants": variants,
    }
    dbcache.database(n)
    tmp = Path(tempfile.mkdtemp(prefix="peers-", dir=work_dir()))
    pg_base = Path(tempfile.mkdtemp(prefix="peers-pg-", dir=work_dir()))
    cluster: peers_procs.PgCluster | None = None
    try:
        files = Files(tmp, n, writes_total)
        peers_data.sqlite_file(n)
        secret = secrets.token_hex(32)
        token = peers_procs.datasette_token(secret)
        cluster = peers_procs.PgCluster(pg_base)
        out["postgres_load_s"] = load_postgres(cluster, n)
        for r in range(rounds):
            shift = r % len(systems)
            for system in systems[shift:] + systems[:shift]:
                if system.startswith("stemedb"):
                    env = variants.get(system.partition("+")[2], {})
                    got = round_stemedb(n, files, seconds, connections, bulk_connections, env)
                elif system == "datasette":
                    got = round_datasette(
                        n, files, seconds, connections, bulk_connections, secret, token
                    )
                else:
                    got = round_postgres(
                        cluster, n, r, files, seconds, connections, bulk_connections
                    )
                check = got.pop("check", None)
                if check is not None:
                    # Rows really in the peer's table vs the inserts it acknowledged:
                    # added >= acked (wrk stops with requests in flight), never fewer.
                    out.setdefault("checks", []).append({"system": system, "round": r, **check})
                    print(f"  round {r + 1}/{rounds} {system} check: {check}", flush=True)
                for workload, row in got.items():
                    per[system].setdefault(workload, []).append(row)
                    _print(f"round {r + 1}/{rounds} {system}", workload, row)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(pg_base, ignore_errors=True)
    out["runs"] = per
    out["median"] = {
        s: {w: _median(rows) for w, rows in workloads.items()} for s, workloads in per.items()
    }
    out["ratios"] = ratios(per)
    return out


def _median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    med: dict[str, Any] = {}
    for k in KEYS:
        values = [r[k] for r in rows if r.get(k) is not None]
        med[k] = round(statistics.median(values), 2) if values else None
    med["errors"] = sum(r.get("errors") or 0 for r in rows)
    med["repeats"] = sum(r.get("repeats") or 0 for r in rows)
    return med


# (name, StemeDB workload, peer workload, goal vs Datasette, goal vs Postgres)
COMPARISONS = (
    ("single writes", "single", "single", 10.0, 1.0),
    ("bulk writes", "bulk", "bulk", 2.0, None),
    ("recency vs latest-value SQL", "recency", "latest", 3.0, 1.0),
    ("authority vs latest-value SQL", "authority", "latest", 3.0, 1.0),
    ("health (HTTP ceiling)", "health", "health", None, None),
)


WORKLOADS = (
    ("health", "health"),
    ("recency", "recency"),
    ("authority", "authority"),
    ("single", "single"),
    ("bulk", "bulk"),
)


def ratios(per: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Median over rounds of StemeDB's rate ÷ each peer's in the same round."""
    out: dict[str, Any] = {}
    for name, mine, theirs, _, _ in COMPARISONS:
        for peer in ("datasette", "postgres"):
            pairs = zip(
                per.get("stemedb", {}).get(mine, []),
                per.get(peer, {}).get(theirs, []),
                strict=False,
            )
            values = [a["rate"] / b["rate"] for a, b in pairs if b["rate"]]
            out[f"{name} / {peer}"] = round(statistics.median(values), 2) if values else None
    for lens in ("recency", "authority"):
        own = per.get("stemedb", {})
        pairs = zip(own.get(lens, []), own.get("health", []), strict=False)
        values = [a["rate"] / b["rate"] for a, b in pairs if b["rate"]]
        out[f"{lens} / stemedb health"] = round(statistics.median(values), 2) if values else None
    return out


def markdown(res: dict[str, Any]) -> str:
    med = res["median"]
    rat = res["ratios"]

    def cell(system: str, workload: str) -> str:
        m = med.get(system, {}).get(workload)
        if not m:
            return "—"
        return f"{m['rate']:,.0f}/s (p99 {m['p99_ms']} ms)"

    def goal(value: float | None, target: float | None) -> str:
        if value is None:
            return "—"
        if target is None:
            return f"{value}×"
        return f"{value}× (goal ≥ {target}×: {'met' if value >= target else 'NOT met'})"

    lines = [
        f"{res['assertions']:,} claims loaded; {res['rounds']} rounds of {res['seconds']:.0f} s"
        f" per workload; wrk 1 thread, {res['connections']} connections"
        f" ({res['bulk_connections']} for bulk, {res['chunk']:,} claims per request)."
        " Rates are claims (rows) per second for writes, answers per second for reads;"
        " ratios are medians of the per-round ratios.",
        "",
        "| workload | StemeDB | Datasette | Postgres app | StemeDB ÷ Datasette"
        " | StemeDB ÷ Postgres |",
        "|---|---|---|---|---|---|",
    ]
    for name, mine, theirs, g_ds, g_pg in COMPARISONS:
        lines.append(
            f"| {name} | {cell('stemedb', mine)} | {cell('datasette', theirs)}"
            f" | {cell('postgres', theirs)} | {goal(rat[f'{name} / datasette'], g_ds)}"
            f" | {goal(rat[f'{name} / postgres'], g_pg)} |"
        )
    lines += [
        "",
        "StemeDB lens ÷ its own `/v1/health` in the same round (goal ≥ 0.5×):"
        f" recency {goal(rat['recency / stemedb health'], 0.5)},"
        f" authority {goal(rat['authority / stemedb health'], 0.5)}.",
    ]
    variant_rows = [s for s in med if s.startswith("stemedb+")]
    if variant_rows:
        lines += ["", "| StemeDB setting | " + " | ".join(w for w, *_ in WORKLOADS) + " |"]
        lines.append("|---|" + "---|" * len(WORKLOADS))
        for s in ("stemedb", *variant_rows):
            env = res["variants"].get(s.partition("+")[2], {})
            label = ", ".join(f"{k}={v}" for k, v in env.items()) or "defaults"
            lines.append(f"| {label} | " + " | ".join(cell(s, w) for _, w in WORKLOADS) + " |")
    errors = {
        f"{s}/{w}": (m["errors"], m["repeats"])
        for s, ws in med.items()
        for w, m in ws.items()
        if m["errors"] or m["repeats"]
    }
    lines.append(f"Errors / repeats: {errors or 'none'}.")
    short = [c for c in res.get("checks", []) if c["rows_added"] < c["rows_acked"]]
    lines.append(
        "Peers' rows counted in their tables after each round, against the inserts they"
        f" acknowledged: {'all present' if not short else f'MISSING ROWS {short}'}"
        f" ({len(res.get('checks', []))} checks)."
    )
    return "\n".join(lines)


def parse_variants(specs: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for spec in specs:
        name, _, settings = spec.partition(":")
        out[name] = dict(kv.split("=", 1) for kv in settings.split(",") if kv)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--size", type=int, default=100_000, help="loaded claims (100,000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="each wrk run (10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument(
        "--writes", type=int, default=WRITES_TOTAL, help="new signed claims (200,000)"
    )
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma list of stemedb,datasette,postgres"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VAL[,KEY=VAL]",
        help="another StemeDB server in every round with these settings (repeatable)",
    )
    parser.add_argument("--bulk-connections", type=int, default=4)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--report", metavar="JSON", help="only re-render the Markdown of a run")
    args = parser.parse_args(argv)
    if args.report:
        print(markdown(json.loads(Path(args.report).read_text())))
        return 0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    res: dict[str, Any] = {
        "stamp": stamp,
        "command": " ".join(
            ["python -m bench.peers", *(argv if argv is not None else sys.argv[1:])]
        ),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_start": loadavg(),
    }
    from bench.__main__ import code_digest, git_state

    res["git"] = git_state()
    digest = code_digest()
    res.update(
        run(
            args.size,
            seconds=args.seconds,
            rounds=args.rounds,
            writes_total=args.writes,
            bulk_connections=args.bulk_connections,
            systems=tuple(s for s in args.systems.split(",") if s in SYSTEMS),
            variants=parse_variants(args.variant),
        )
    )
    res["loadavg_end"] = loadavg()
    res["code_changed_during_run"] = code_digest() != digest
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"peers-{stamp}.json").write_text(json.dumps(res, indent=2))
    text = markdown(res)
    (out / f"peers-{stamp}.md").write_text(
        f"# Peers, run {stamp}\n\n`{res['command']}`\n\n{text}\n"
    )
    print(text)
    print(f"wrote {out / f'peers-{stamp}.json'} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
