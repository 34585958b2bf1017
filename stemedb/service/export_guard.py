"""What an export does when it meets a damaged journal frame.

An export streams: once the first bytes are sent the status is 200 and can no
longer change. So (documented in docs/operations/runbooks/corruption.md):

* every whole frame before the damaged one is sent, in order;
* an export whose very first frame is damaged answers 503 `corrupt_frame`
  naming the seq (nothing was sent yet, so the status can still say so);
* otherwise the stream ends with one last line, an error object naming the
  seq (NDJSON: `{"error": {"code": "corrupt_frame", "seq": N, ...}}`; CSV:
  `#error,corrupt_frame,N,<message>`), and the server logs it. Nothing after
  the damaged frame is sent, and no frame is ever silently skipped.

Healthy ranges stay exportable: `after=<seq>` starts past the damage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

from stemedb.store.journal import CorruptFrame

log = logging.getLogger("stemedb.service.export")


class CorruptGuard:
    """Wraps an export's line iterator; primes it so early damage is an HTTP error."""

    def __init__(self, lines: Iterator[bytes], fmt: str) -> None:
        self._lines = lines
        self._fmt = fmt
        self._done = False
        # The CSV iterator yields its header row before reading any frame.
        self._buffer: list[bytes] = []
        for _ in range(2 if fmt == "csv" else 1):
            try:
                self._buffer.append(next(lines))  # CorruptFrame propagates: a 503
            except StopIteration:
                self._done = True
                break

    def __iter__(self) -> CorruptGuard:
        return self

    def __next__(self) -> bytes:
        if self._buffer:
            return self._buffer.pop(0)
        if self._done:
            raise StopIteration
        try:
            return next(self._lines)
        except CorruptFrame as exc:
            self._done = True
            log.error("export stopped at a damaged frame: %s", exc)
            return self._error_line(exc)

    def _error_line(self, exc: CorruptFrame) -> bytes:
        if self._fmt == "csv":
            message = str(exc).replace(",", ";").replace("\n", " ")
            return f"#error,corrupt_frame,{exc.seq},{message}\n".encode()
        error = {"code": "corrupt_frame", "seq": exc.seq, "message": str(exc)}
        return json.dumps({"error": error}).encode("utf-8") + b"\n"

    def close(self) -> None:
        close = getattr(self._lines, "close", None)
        if close is not None:
            close()
