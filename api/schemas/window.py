"""A window of time as a query gives it: ``30s``, ``5m``, ``1h`` (or bare seconds).

One parser for every read over a recent window (the processes' timings, the profile), so
they accept the same words and refuse the same way: a 422 problem naming ``window``.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Query
from pydantic import BeforeValidator, WithJsonSchema

MIN_WINDOW_S = 10
MAX_WINDOW_S = 3600
DEFAULT_WINDOW_S = 300  # 5m
_WINDOW = re.compile(r"([0-9]{1,7})([smh]?)")
PATTERN = r"^[0-9]{1,7}[smh]?$"
RULE = "how far back: a duration from 10s to 1h, e.g. 30s, 5m, 1h"
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600}


def window_seconds(text: str) -> int:
    """``text`` as seconds; ValueError unless it is a duration from 10 s to 1 h."""
    found = _WINDOW.fullmatch(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise ValueError("must be a duration such as 30s, 5m or 1h")
    seconds = int(found[1]) * _UNIT_S[found[2]]
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise ValueError(f"must be from {MIN_WINDOW_S}s to 1h")
    return seconds


WindowQuery = Annotated[
    int,
    BeforeValidator(window_seconds),
    Query(
        description=RULE,
        examples=["5m"],
        json_schema_extra={"type": "string", "pattern": PATTERN, "maxLength": 8},
    ),
]

# The same, as a field of a query model (the profile's): text in, seconds out.
Window = Annotated[
    float,
    BeforeValidator(window_seconds),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": PATTERN,
            "maxLength": 8,
            "description": RULE,
            "examples": ["5m"],
        }
    ),
]
