"""wrk for the peers: bench.wrk's scripts plus a bearer token, a content type, multi-line bodies.

Datasette's write API wants `Authorization: Bearer <token>`, and a StemeDB batch
is NDJSON, several lines in one body, while wrk's Lua reads the body file line
by line. So a body file here holds one request body per line with its inner
newlines written as the ASCII record separator 0x1E (JSON never holds it raw),
turned back into newlines when wrk loads the file. Everything else (the random
GET paths, the done() JSON line, client CPU from rusage, server CPU from /proc)
is bench.wrk's, so every system is measured by the same load generator the
same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

from bench import wrk
from bench.server import Sampler, work_dir

RS = "\x1e"

_BODIES = """
function init(args)
  local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS"))
  local first = tonumber(os.getenv("BENCH_WRK_OFFSET"))
  local last = first + tonumber(os.getenv("BENCH_WRK_COUNT"))
  local path = os.getenv("BENCH_WRK_PATH")
  local headers = {["Content-Type"] = os.getenv("BENCH_WRK_CTYPE")}
  local auth = os.getenv("BENCH_WRK_AUTH")
  if auth ~= nil and auth ~= "" then headers["Authorization"] = "Bearer " .. auth end
  reqs = {}
  local i = 0
  for line in io.lines(os.getenv("BENCH_WRK_FILE")) do
    if i >= last then break end
    if i >= first and (i % nthreads) == tid then
      local body = string.gsub(line, "\\30", "\\n")
      reqs[#reqs + 1] = wrk.format("POST", path, headers, body)
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


class Target(Protocol):
    """What the load generator needs of a system under test."""

    @property
    def url(self) -> str: ...

    @property
    def pid(self) -> int: ...


def run(
    target: Target,
    kind: str,
    file: Path,
    *,
    seconds: float,
    connections: int = 32,
    offset: int = 0,
    count: int = 0,
    path: str = "/",
    content_type: str = "application/json",
    auth: str = "",
) -> dict[str, Any]:
    """One wrk run (kind `paths` or `bodies`); the same numbers as bench.wrk.run."""
    script_text = wrk._SETUP + (wrk._PATHS if kind == "paths" else _BODIES) + wrk._DONE
    with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
        script = Path(tmp) / f"{kind}.lua"
        script.write_text(script_text)
        env = {
            **os.environ,
            "BENCH_WRK_FILE": str(file),
            "BENCH_WRK_THREADS": "1",
            "BENCH_WRK_OFFSET": str(offset),
            "BENCH_WRK_COUNT": str(count if count > 0 else 10**9),
            "BENCH_WRK_PATH": path,
            "BENCH_WRK_CTYPE": content_type,
            "BENCH_WRK_AUTH": auth,
        }
        out_path = Path(tmp) / "wrk.out"
        cmd = [
            wrk.WRK,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            target.url,
        ]
        with out_path.open("wb") as out, Sampler(target.pid) as sampler:
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
    result["client_cpu_cores"] = round(client_cpu / wall, 3)
    result.update(sampler.summary())
    result["errors"] = sum(
        result[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    # Busy cores on the machine not spent by this server process or wrk: other
    # tenants, and for the Postgres app also the database's own processes.
    result["others_cpu_cores"] = round(
        result["machine_busy_cores"] - result["server_cpu_cores"] - result["client_cpu_cores"], 2
    )
    result["rps"] = round(result["requests"] / result["duration_s"], 1)
    result["ok_per_s"] = round(
        (result["requests"] - result["status_errors"]) / result["duration_s"], 1
    )
    return result


def write_bodies(path: Path, bodies: list[str]) -> Path:
    """One body per line, inner newlines as 0x1E (see the module docstring)."""
    with path.open("w") as f:
        for body in bodies:
            f.write(body.replace("\n", RS) + "\n")
    return path
