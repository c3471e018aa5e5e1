"""Log lines are structured: logfmt extras that always split cleanly, or JSON lines."""

from __future__ import annotations

import json
import logging
import shlex

import pytest

from api.logs import JsonFormatter, KeyValueFormatter, configure
from api.serve import started_banner


def _record(**extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "api.x", "levelname": "INFO", "msg": "a thing"})
    record.__dict__.update(extra)
    return record


def test_an_extra_with_spaces_quotes_or_equals_is_quoted_so_pairs_split_cleanly() -> None:
    line = KeyValueFormatter("%(message)s").format(
        _record(action="db_down", error='server closed "the" connection', url="a=b", empty="")
    )
    assert line.startswith("a thing ")
    pairs = dict(p.split("=", 1) for p in shlex.split(line.removeprefix("a thing ")))
    assert pairs == {
        "action": "db_down",
        "error": 'server closed "the" connection',
        "url": "a=b",
        "empty": "",
    }


def test_json_lines_carry_the_message_and_every_extra() -> None:
    entry = json.loads(JsonFormatter().format(_record(action="serving", url="http://h:1")))
    assert entry["message"] == "a thing" and entry["level"] == "INFO"
    assert entry["action"] == "serving" and entry["url"] == "http://h:1"
    assert entry["ts"].endswith("+00:00")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="APIARY_LOG_FORMAT"):
        configure("INFO", "xml")


def test_the_start_banner_stands_apart() -> None:
    banner = started_banner("http://127.0.0.1:8000", "admin key in .apiary/admin.key")
    lines = banner.splitlines()
    assert lines[0] == "" and lines[-1] == lines[1] and set(lines[1]) == {"="}
    assert lines[2] == "Apiary is up: http://127.0.0.1:8000"
    assert "  dashboard  http://127.0.0.1:8000/dashboard" in lines
