"""CPU affinity for the server process (`STEMEDB_CPU_AFFINITY`).

Why: the server is one CPython process; its Python code runs under one GIL,
so it never uses much more than one core. What a second core adds is
contention: request threads, the waitress loop and the writer hand the GIL
back and forth across cores, each hand-off a cross-core wake-up. Measured on
the 2-core benchmark machine, pinning the server to one core answered 37-40 %
more queries and 64 % more writes with 40 % less CPU per request
(docs/benchmarks.md). `auto` therefore pins to one CPU of those the process
may use (the highest-numbered: CPU 0 usually takes the most interrupts);
`off` leaves the scheduler alone; a list (`1`, `0,2-3`) pins to exactly those.
Run several servers on one host with explicit, different lists.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from stemedb import crypto
from stemedb.config import ConfigError

log = logging.getLogger("stemedb.server")


def _format(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def choose(setting: str, allowed: set[int]) -> set[int] | None:
    """The CPUs to pin to, or None to leave the affinity as it is."""
    if setting == "off" or not allowed:
        return None
    if setting == "auto":
        return {max(allowed)} if len(allowed) > 1 else None
    wanted = {int(c) for c in setting.split(",")}
    usable = wanted & allowed
    if not usable:
        raise ConfigError(
            "STEMEDB_CPU_AFFINITY",
            f"none of CPUs {setting} is available to this process (allowed: {_format(allowed)}); "
            "pick from the allowed CPUs, or set auto or off",
        )
    return usable


def apply(setting: str) -> str:
    """Pin every thread of this process; returns a line for the start-up log."""
    if not hasattr(os, "sched_setaffinity"):
        return "cpu affinity: not supported on this platform"
    allowed = os.sched_getaffinity(0)
    cpus = choose(setting, allowed)
    if setting == "auto" and cpus is not None:
        crypto.spread_cpus = allowed  # signature checks release the GIL: let them spread
    if cpus is None:
        return f"cpu affinity: {setting}, running on CPUs {_format(allowed)}"
    try:
        for task in Path("/proc/self/task").iterdir():  # every thread already started, too
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except (ProcessLookupError, ValueError):
                continue  # the thread ended meanwhile
        os.sched_setaffinity(0, cpus)
    except PermissionError as exc:  # a seccomp filter (systemd SystemCallFilter=~@resources)
        log.warning(
            "STEMEDB_CPU_AFFINITY=%s: cannot pin to CPU %s (%s); running unpinned. Allow "
            "sched_setaffinity, or set STEMEDB_CPU_AFFINITY=off to silence this",
            setting,
            _format(cpus),
            exc.strerror,
        )
        return f"cpu affinity: {setting}, NOT pinned (not permitted), running on {_format(allowed)}"
    return f"cpu affinity: {setting}, pinned to CPU {_format(cpus)} of {_format(allowed)}"
