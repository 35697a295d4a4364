"""Log formats: the text line people read, and JSON lines log shippers parse.

``--log-format json`` writes one JSON object per line with the fields of the
text line (``time``, ``level``, ``logger``, ``message``) plus ``exc_info``,
the formatted traceback as one string, when a record carries one. A shipper
(journald to Loki, Vector, Fluent Bit) then needs no regular expression, and
a message or traceback with newlines in it stays one record.
"""

from __future__ import annotations

import json
import logging

#: The text line: what ``--log-format text`` (the default) prints.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
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
        # ensure_ascii keeps every line plain ASCII whatever the message holds.
        return json.dumps(entry, ensure_ascii=True)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``--log-format`` (``text`` or ``json``)."""
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)
