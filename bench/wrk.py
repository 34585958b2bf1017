"""Drive a server with wrk (C, epoll, LuaJIT): far less client CPU than a Python client.

Two Lua scripts are generated per run:

* `paths`: GET requests picked at random from a file of paths (one per line),
  each pre-formatted in `init`;
* `bodies`: POST one pre-signed body per request, walking the file in order;
  each wrk thread takes every n-th line so no two connections send the same
  record (a repeat would be answered `exists` and measure the wrong path).
  A run gets a slice [offset, offset + count) of the file so successive runs
  against the same server never repeat a record.

`done()` prints one JSON line (latency percentiles in ms, error counts). The
client's own CPU comes from `os.wait4` (rusage of the wrk process); the
server's from /proc while wrk runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.server import Sampler, Server, work_dir

WRK = shutil.which("wrk") or "/usr/bin/wrk"

_SETUP = """
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
"""

_PATHS = """
function init(args)
  local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS"))
  math.randomseed(1000 + tid)
  reqs = {}
  local headers = {}
  for line in io.lines(os.getenv("BENCH_WRK_FILE")) do
    reqs[#reqs + 1] = wrk.format("GET", line, headers)
  end
  n = #reqs
end

function request()
  return reqs[math.random(n)]
end
"""

_BODIES = """
function init(args)
  local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS"))
  local first = tonumber(os.getenv("BENCH_WRK_OFFSET"))
  local last = first + tonumber(os.getenv("BENCH_WRK_COUNT"))
  local path = os.getenv("BENCH_WRK_PATH")
  local headers = {["Content-Type"] = "application/json"}
  reqs = {}
  local i = 0
  for line in io.lines(os.getenv("BENCH_WRK_FILE")) do
    if i >= last then break end
    if i >= first and (i % nthreads) == tid then
      reqs[#reqs + 1] = wrk.format("POST", path, headers, line)
    end
    i = i + 1
  end
  n = #reqs
  k = 0
end

function request()
  k = k + 1
  if k > n then k = 1 end
  return reqs[k]
end
"""

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  local p = {}
  for _, q in ipairs({50, 75, 90, 99, 99.9}) do
    p[#p + 1] = string.format('"p%s_ms":%.3f', q, latency:percentile(q) / 1000)
  end
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"mean_ms":%.3f,"max_ms":%.3f,%s}\\n',
    summary.requests, summary.duration / 1e6, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean / 1000, latency.max / 1000, table.concat(p, ",")))
end
"""


def _script(kind: str) -> str:
    return _SETUP + (_PATHS if kind == "paths" else _BODIES) + _DONE


def run(
    srv: Server,
    kind: str,
    file: Path,
    *,
    seconds: float,
    connections: int = 32,
    threads: int = 1,
    offset: int = 0,
    count: int = 0,
    path: str = "/v1/assert",
) -> dict[str, Any]:
    """One wrk run; returns wrk's numbers plus client and server CPU (cores)."""
    with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
        script = Path(tmp) / f"{kind}.lua"
        script.write_text(_script(kind))
        env = {
            **os.environ,
            "BENCH_WRK_FILE": str(file),
            "BENCH_WRK_THREADS": str(threads),
            "BENCH_WRK_OFFSET": str(offset),
            "BENCH_WRK_COUNT": str(count if count > 0 else 10**9),
            "BENCH_WRK_PATH": path,
        }
        out_path = Path(tmp) / "wrk.out"
        cmd = [
            WRK,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            srv.url,
        ]
        with out_path.open("wb") as out, Sampler(srv.pid) as sampler:
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - started
        text = out_path.read_text(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text[-2000:]}")
    result: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
    client_cpu = usage.ru_utime + usage.ru_stime
    result["client_cpu_s"] = round(client_cpu, 2)
    result["client_cpu_cores"] = round(client_cpu / wall, 3)
    result.update(sampler.summary())
    errors = sum(
        result[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    result["errors"] = errors
    result["rps"] = round(result["requests"] / result["duration_s"], 1)
    # Server CPU per answered request: robust to noise from other processes, and with
    # the GIL (~1 core for Python) 1000 / this is roughly the ceiling in req/s.
    result["server_cpu_ms_per_req"] = (
        round(1000 * result["server_cpu_s"] / result["requests"], 3) if result["requests"] else None
    )
    # Busy cores on the machine not spent by this server or wrk: the other tenants.
    result["others_cpu_cores"] = round(
        result["machine_busy_cores"] - result["server_cpu_cores"] - result["client_cpu_cores"], 2
    )
    return result


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path
