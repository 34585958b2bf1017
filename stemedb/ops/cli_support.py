"""What the operations subcommands share: settings from the environment, progress bars.

Progress bars go to stderr and only on a terminal, so timers and scripts get
clean output (systemd would otherwise log every redraw).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from stemedb.config import ConfigError, Settings, load_settings


def settings_or_none(command: str) -> Settings | None:
    """Settings from STEMEDB_* variables; print the bad one and return None."""
    try:
        return load_settings(os.environ)
    except ConfigError as exc:
        print(f"stemedb {command}: {exc.variable}: {exc.problem}", file=sys.stderr)
        return None


def fail(command: str, message: str) -> int:
    print(f"stemedb {command}: FAILED: {message}", file=sys.stderr)
    return 1


@contextmanager
def progress_bar(total: int | None, unit: str, desc: str) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; a tqdm bar on a TTY, a no-op otherwise."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from tqdm import tqdm

    bar: Any = tqdm(
        total=total, unit=unit, unit_scale=True, desc=desc, file=sys.stderr, leave=False
    )
    try:
        yield bar.update
    finally:
        bar.close()


@contextmanager
def page_bar(desc: str) -> Iterator[Callable[[int, int], None]]:
    """Yield `report(done, total)` for copies that know their size only once started."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from tqdm import tqdm

    bar: Any = tqdm(unit="page", desc=desc, file=sys.stderr, leave=False)

    def report(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield report
    finally:
        bar.close()
