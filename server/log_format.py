"""How the server and the commands write their log: text for a terminal, or JSON for a log collector.

SEENEXT_LOG_FORMAT=json writes one JSON object per line on stderr, with the keys `time` (UTC, ISO 8601
to the millisecond), `level`, `logger`, `message`, `process` (which of `serve --processes N`) and, when
there is one, `exception` (the traceback as text): a collector (Loki, Elasticsearch, CloudWatch) then
reads the level and the logger as fields, and a traceback stays one record instead of one per line.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside the message are escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def _utc(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """A stderr (or `stream`) handler writing `log_format` ("text" or "json")."""
    out = logging.StreamHandler(stream)
    out.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    return out


def configure(level: str, log_format: str) -> None:
    """The root logger's level and format, once per process (a no-op if logging is already set up)."""
    logging.basicConfig(level=level, handlers=[handler(log_format)])
