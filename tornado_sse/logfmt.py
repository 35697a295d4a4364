"""Log formats: the text line people read, and JSON lines log shippers parse.

``--log-format json`` writes one JSON object per line with the fields of the
text line (``time``, ``level``, ``logger``, ``message``) plus ``exc_info``,
the formatted traceback as one string, when a record carries one. A shipper
(journald to Loki, Vector, Fluent Bit) then needs no regular expression, and
a message or traceback with newlines in it stays one record.

Facts a shipper filters or sums on (``route``, ``status``, ``duration_ms``,
``reason``, ``events``, ``bytes``, ``request_id``) travel as fields, not as
``k=v`` text inside the message: a log call passes them with
``extra=fields(...)``; the JSON line carries each as its own key (typed:
numbers stay numbers), and the text line appends them as ``k=v`` for people.
"""

from __future__ import annotations

import json
import logging
from typing import Any

#: The text line: what ``--log-format text`` (the default) prints.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


#: The record attribute ``extra=fields(...)`` sets.
FIELDS = "fields"


def fields(**values: Any) -> dict[str, dict[str, Any]]:
    """``extra=`` for a log call whose facts are fields (None values dropped)."""
    return {FIELDS: {k: v for k, v in values.items() if v is not None}}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    value = getattr(record, FIELDS, None)
    return value if isinstance(value, dict) else {}


class TextFormatter(logging.Formatter):
    """The text line, with a record's fields appended as ``k=v``."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extra = record_fields(record)
        if extra:
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            # The text line's clock and layout: "2026-01-02 03:04:05,678".
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        for key, value in record_fields(record).items():
            entry.setdefault(key, value)  # a field never overwrites time, level, message
        # ensure_ascii keeps every line plain ASCII whatever the message holds;
        # default=str: a field of an odd type is shown, never lost with the line.
        return json.dumps(entry, ensure_ascii=True, default=str)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``--log-format`` (``text`` or ``json``)."""
    if log_format == "json":
        return JsonFormatter()
    return TextFormatter(TEXT_FORMAT)
