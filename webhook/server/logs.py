"""Structured logs: one line per event, JSON for log pipelines or key=value text for people.

Records carry their structured part in `extra={"fields": {...}}`. Only names and outcomes are
ever put there: never a pod spec, a token or a key.

The admission line is written on every request, so it skips the logging machinery (record
objects, caller lookup, a lock, one write(2) per line): AdmissionLog formats it directly and
queues it on the same handler, which writes each event-loop pass's lines with one call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any, TextIO

import orjson

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")
ADMISSION_LOGGER = "webhook.admission"

_clock_second = -1
_clock_text = ""


def _timestamp(seconds: float) -> str:
    """RFC 3339 UTC with milliseconds; strftime runs once a second, not once a line."""
    global _clock_second, _clock_text
    whole = int(seconds)
    if whole != _clock_second:
        _clock_second, _clock_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_clock_text}.{int((seconds - whole) * 1000):03d}Z"


def _text_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' "=\n'):
        return json.dumps(text)
    return text


def format_line(
    log_format: str, created: float, level: str, logger: str, msg: str, fields: dict[str, Any]
) -> str:
    if log_format == "json":
        head = {"time": _timestamp(created), "level": level, "logger": logger, "msg": msg}
        return orjson.dumps({**head, **fields}, default=str).decode()
    parts = [_timestamp(created), level.upper(), logger, msg]
    parts.extend(f"{key}={_text_value(value)}" for key, value in fields.items())
    return " ".join(parts)


class _Formatter(logging.Formatter):
    log_format = "text"

    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", None) or {})
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        return format_line(
            self.log_format,
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            fields,
        )


class JsonFormatter(_Formatter):
    log_format = "json"


class TextFormatter(_Formatter):
    log_format = "text"


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the lines of one event-loop pass together.

    stderr is line-buffered, so a plain StreamHandler makes one write(2) per line. Inside a
    running loop, lines are queued and written by one call scheduled for the end of the pass;
    outside a loop (startup, shutdown), at once.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.enqueue(line)

    def enqueue(self, line: str) -> None:
        self._pending.append(line)
        if len(self._pending) > 1:
            return  # a flush is already scheduled
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            lines, self._pending = self._pending, []
            self.stream.write("\n".join(lines) + "\n")
        super().flush()


def configure_logging(
    level: str = "info", log_format: str = "text", stream: TextIO | None = None
) -> BatchingStreamHandler:
    """Route every logger (ours and aiohttp's) to stderr in the chosen format."""
    handler = BatchingStreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per admission is ours; aiohttp's access log would double it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler


class AdmissionLog:
    """The one line per admission. Without a handler (library use, tests) it goes through the
    `webhook.admission` logger like any other record."""

    def __init__(
        self, handler: BatchingStreamHandler | None = None, log_format: str = "text"
    ) -> None:
        self.handler = handler
        self.log_format = log_format
        self.logger = logging.getLogger(ADMISSION_LOGGER)

    def __call__(self, fields: dict[str, Any]) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        if self.handler is None:
            self.logger.info("admission", extra={"fields": fields})
            return
        self.handler.enqueue(
            format_line(self.log_format, time.time(), "info", ADMISSION_LOGGER, "admission", fields)
        )
