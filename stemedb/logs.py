r"""Logging set-up: one line per event, text for people or JSON for collectors.

Everything (our loggers, waitress's, warnings) goes through the root
logger's single handler so the journal sees one consistent format.

Log lines carry request data (a path, a subject, a header), so a client
could otherwise write a line of its own: `GET /v1/assertions/x%0A<forged
line>` did (issue 14, item 12). Both formatters therefore escape every
character that can end a line or change what a terminal shows — C0 and C1
controls (CR, LF, NUL, ESC, U+0085, ...), DEL, U+2028/U+2029, the bidi
overrides — and lone surrogates (unencodable: the handler would print a
traceback instead). Text escapes them as `\xNN`/`\uNNNN` and renders a
traceback on the same line (`\n` between its lines); JSON as `\uNNNN`
inside its strings, so a parser gets the original text back. Either way one
event is exactly one line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
LEVELS["error"] = logging.ERROR
# Attributes every LogRecord has; anything else was passed with `extra=`.
_HANDLER_NAME = "stemedb"
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BIDI = (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_C0_C1 = (*range(0x00, 0x20), *range(0x7F, 0xA0))
_UNSAFE = (*_C0_C1, 0x2028, 0x2029, *_BIDI, *range(0xD800, 0xE000))
_TEXT_ESCAPES = {
    code: _NAMED.get(chr(code)) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in _UNSAFE
}
# json.dumps already escapes C0 controls; the rest must not reach the line raw.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in _UNSAFE if code >= 0x20}


def escape_text(text: str) -> str:
    """`text` with every line-breaking or invisible control character escaped."""
    return text if text.isprintable() else text.translate(_TEXT_ESCAPES)


def escape_json_line(line: str) -> str:
    """A `json.dumps(..., ensure_ascii=False)` line with C1, U+2028/9, bidi controls and
    lone surrogates escaped as `\\uNNNN` (they only occur inside strings)."""
    return line if line.isprintable() else line.translate(_JSON_ESCAPES)


def _utc(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


class TextFormatter(logging.Formatter):
    """`2026-01-01T00:00:00Z INFO stemedb.server [5/10] open the journal: ...`"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc(record)} {record.levelname} {record.name} {record.getMessage()}"
        request_id = getattr(record, "request_id", None)
        if request_id:
            line += f" request_id={request_id}"
        if record.exc_info:
            line += " exc=" + self.formatException(record.exc_info)
        return escape_text(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, extras, and exc when any."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _utc(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return escape_json_line(json.dumps(out, ensure_ascii=False))


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """(Re)configure the root logger; safe to call again once settings are known."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:  # ours from an earlier call; keep others (pytest's)
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level, logging.INFO))
    # waitress logs through "waitress" and "waitress.queue": let them reach our handler.
    for name in ("waitress", "waitress.queue"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    logging.captureWarnings(True)
