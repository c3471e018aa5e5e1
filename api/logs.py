"""Log lines people can read and machines can parse.

Two formats, chosen by ``APIARY_LOG_FORMAT``:

- ``text`` (the default): ``<time> <LEVEL> <logger>: <message> key=value ...``, the
  record's extras in logfmt: a value with a space, a quote, an ``=`` or nothing in it is
  quoted (JSON string escapes), so ``key=value`` pairs always split cleanly;
- ``json``: one JSON object per line: ``ts``, ``level``, ``logger``, ``message`` and every
  extra under its own name.

Every record the hive writes on purpose carries ``action``, a stable name (``db_down``,
``config_applied``, ``http_request``, ...) to search and alert on; messages may change
wording, actions do not.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_BARE = re.compile(r"[^\s\"=]+")
FORMATS = ("text", "json")


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """What the caller passed in ``extra=``: every attribute a plain record does not have."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = " ".join(f"{k}={logfmt_value(v)}" for k, v in extras(record).items())
        return f"{line} {pairs}" if pairs else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **extras(record),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    if fmt not in FORMATS:
        raise ValueError(f"APIARY_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
