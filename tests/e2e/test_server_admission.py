"""Admission (`STEMEDB_ACTIVE_REQUESTS`) and CPU affinity on a real server process.

With one active request, a request blocked on something other than the CPU
(a long poll, a group commit) must give its turn back, or the server would
stall; and many concurrent requests must all be answered, in turn.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from e2ekit import Agent, RunningServer, ServerFactory, unique, wait_for_metric

from stemedb.affinity import choose


def _cpus_allowed(pid: int, tid: int | None = None) -> set[int]:
    status = Path(f"/proc/{pid}/task/{tid or pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("Cpus_allowed_list:"))
    cpus: set[int] = set()
    for part in line.split(":", 1)[1].strip().split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def _threads(pid: int) -> list[int]:
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


def test_auto_affinity_pins_every_server_thread_to_one_cpu(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory()
    allowed = os.sched_getaffinity(0)
    expected = choose("auto", allowed) or allowed
    threads = _threads(srv.proc.pid)
    assert len(threads) > 30  # waitress workers, the writer, the main loop
    for tid in threads:
        assert _cpus_allowed(srv.proc.pid, tid) == expected
    assert "cpu affinity: auto" in srv.proc.output


def test_affinity_off_leaves_the_process_where_it_was(server_factory: ServerFactory) -> None:
    srv = server_factory({"STEMEDB_CPU_AFFINITY": "off"})
    assert _cpus_allowed(srv.proc.pid) == os.sched_getaffinity(0)
    assert "cpu affinity: off" in srv.proc.output


def test_an_unavailable_cpu_list_stops_the_start_at_step_3(run_server_process: Any) -> None:
    proc = run_server_process({"STEMEDB_CPU_AFFINITY": "4000"}, wait=False)
    assert proc.wait(30) == 1
    assert "[3/10] configuration: FAILED: STEMEDB_CPU_AFFINITY: none of CPUs 4000" in proc.output


def _one_slot(server_factory: ServerFactory) -> RunningServer:
    return server_factory({"STEMEDB_ACTIVE_REQUESTS": "1"})


def test_a_long_poll_gives_its_turn_back(server_factory: ServerFactory) -> None:
    srv = _one_slot(server_factory)
    head = srv.api.get_ok("/v1/feed", {"after": 0, "limit": 1000})["next_after"]
    polled: dict[str, Any] = {}

    def long_poll() -> None:
        started = time.monotonic()
        polled["body"] = srv.api.get_ok("/v1/feed", {"after": head, "wait": 20})
        polled["seconds"] = time.monotonic() - started

    poller = threading.Thread(target=long_poll)
    poller.start()
    wait_for_metric(srv.api, "stemedb_long_polls_active", 1)  # parked, holding no slot

    started = time.monotonic()
    assert srv.api.get_ok("/v1/health")["status"] == "healthy"
    agent = Agent()
    written = srv.api.write("/v1/assert", agent.assertion(unique("adm"), "p", 1))
    assert time.monotonic() - started < 5  # not stuck behind the 20 s poll

    poller.join(25)
    assert [f["hash"] for f in polled["body"]["frames"]] == [written["hash"]]
    assert polled["seconds"] < 15  # woken by the write, not by its deadline


def test_concurrent_writes_and_queries_through_one_slot_all_succeed(
    server_factory: ServerFactory,
) -> None:
    srv = _one_slot(server_factory)
    agent = Agent()
    subject = unique("adm")

    def write(i: int) -> int:
        status = srv.api.post("/v1/assert", agent.assertion(subject, "p", i)).status
        return status

    def query(_: int) -> int:
        return srv.api.post("/v1/query", {"subject": subject, "predicate": "p"}).status

    with ThreadPoolExecutor(24) as pool:
        writes = list(pool.map(write, range(48)))
        queries = list(pool.map(query, range(48)))
    assert writes == [201] * 48
    assert queries == [200] * 48
    body = srv.api.query(subject=subject, predicate="p", lens="recency")
    assert body["results"][0]["candidates_count"] == 48
    metrics = srv.api.get("/metrics").text
    assert "\nstemedb_requests_waiting 0.0" in metrics


def test_one_date_header_per_response(server_factory: ServerFactory) -> None:
    import http.client
    from urllib.parse import urlsplit

    srv = server_factory()
    parts = urlsplit(srv.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", "/v1/health")
        resp = conn.getresponse()
        resp.read()
        dates = resp.headers.get_all("Date") or []
    finally:
        conn.close()
    assert len(dates) == 1 and dates[0].endswith(" GMT")
