"""Shared pieces of the schemas: the base model, short names, JSON payloads, problems."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from api.errors import PayloadTooLarge, invalid
from domain.names import MAX_CAPABILITIES, SHORT_NAME, unstorable
from runtime.config import MAX_BATCH_CEILING

NO_REASON = "no reason given"  # recorded when an operator's request leaves its reason out


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def storable_text(value: str) -> str:
    """The rule for one text parameter (a path or query parameter of its own)."""
    problem = unstorable(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A text parameter outside an ``Input`` model (a path or query parameter of its own).
StorableText = Annotated[str, AfterValidator(storable_text)]


class Input(Model):
    """What a request brings (a body, a query): every text in it, at any depth and
    whatever its field (names, keys, reasons, JSON payloads and their keys), obeys one
    rule (``domain.names.unstorable``: no NUL, no lone surrogate), checked before any
    field is. So no field can forget it; ``tests/unit/test_input_text.py`` checks that
    every body and query the API takes is an ``Input``. A model that only ever stands
    inside one (an item of a batch) is a plain ``Model``: its parent's walk covers it,
    and a report of a thousand items is walked once, not a thousand and one times."""

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        if _all_storable(data):  # the common case: one walk, no paths kept
            return data
        found = _first_unstorable(data, ())
        where, problem = found if found is not None else ((), "is not storable")
        raise ValueError(f"{'.'.join(map(str, where)) or 'the input'}: {problem}")


def _all_storable(value: Any) -> bool:
    if isinstance(value, str):
        return unstorable(value) is None
    if isinstance(value, dict):
        for key, item in value.items():
            if not (_all_storable(key) and _all_storable(item)):
                return False
    elif isinstance(value, (list, tuple)):
        for item in value:
            if not _all_storable(item):
                return False
    return True


def _first_unstorable(
    value: Any, at: tuple[str | int, ...]
) -> tuple[tuple[str | int, ...], str] | None:
    if isinstance(value, str):
        problem = unstorable(value)
        return None if problem is None else (at, problem)
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_unstorable(key, (*at, "(a key)")) or _first_unstorable(item, (*at, key))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _first_unstorable(item, (*at, i))
            if found is not None:
                return found
    return None


ShortName = Annotated[
    str,
    StringConstraints(strict=True, max_length=64, pattern=SHORT_NAME.pattern),
    Field(
        description="lowercase letters, digits, '_', '.', '-'; starts with a letter; 1-64",
        examples=["code"],
    ),
]
Capabilities = Annotated[list[ShortName], Field(min_length=1, max_length=MAX_CAPABILITIES)]
# A JSON document a request carries (a payload, a result, a message body): bounded by its
# size, as canonical JSON, not by its shape; the limit is live (APIARY_MAX_PAYLOAD_BYTES).
MAX_BYTES_MARK = "x-apiary-max-bytes"
JsonDocument = Annotated[
    JsonValue,
    Field(
        description="any JSON value, at most APIARY_MAX_PAYLOAD_BYTES as canonical JSON "
        "(256 KiB by default)",
        json_schema_extra={MAX_BYTES_MARK: "max_payload_bytes"},
    ),
]
FencingToken = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]


def _text_only(value: Any) -> Any:
    """A time travels as RFC 3339 text: a number (Unix time?) is refused, not guessed at."""
    if not isinstance(value, str):
        raise ValueError("must be RFC 3339 text with an offset, e.g. 2030-01-01T09:00:00Z")
    return value


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_text_only),
    Field(description="RFC 3339 with an offset", examples=["2030-01-01T09:00:00Z"]),
]


WINDOW_TEXT = re.compile(r"(\d{1,5})(s|m|h)")
WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600}
MIN_WINDOW_S, MAX_WINDOW_S = 10, 3600
WINDOW_RULE = "a duration like 30s, 5m or 1h, from 10s to 1h"


def window_seconds(value: Any) -> float:
    """A window's text (``30s``, ``5m``, ``1h``) as seconds, within 10 s .. 1 h."""
    match = WINDOW_TEXT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"must be {WINDOW_RULE}")
    seconds = int(match[1]) * WINDOW_UNITS[match[2]]
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise ValueError(f"must be {WINDOW_RULE}")
    return float(seconds)


# How far back a report looks: given as text, read as seconds.
Window = Annotated[
    float,
    BeforeValidator(window_seconds),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": WINDOW_TEXT.pattern,
            "maxLength": 6,
            "description": WINDOW_RULE,
            "examples": ["5m"],
        }
    ),
]


def canonical_json(
    value: Any, *, limit: int, loc: tuple[str | int, ...], index: int | None = None
) -> str:
    """``value`` as canonical JSON text (sorted keys), refused when over ``limit`` bytes."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as e:
        raise invalid(loc, "json_unencodable", f"cannot be stored as JSON: {e}") from None
    if len(text) > limit:
        what = f"{loc[-1]} of item {index}" if index is not None else str(loc[-1])
        items = [{"index": index, "reason": "payload-too-large"}] if index is not None else []
        raise PayloadTooLarge(f"the {what} is {len(text)} bytes, over {limit}", items=items)
    return text.decode()


def batch_of(what: str) -> Any:
    """A list of 1..APIARY_MAX_BATCH items (a live limit, checked by ``check_batch``); the
    document declares the ceiling that knob may be raised to."""
    return Field(
        min_length=1, max_length=MAX_BATCH_CEILING, description=f"1..APIARY_MAX_BATCH {what}"
    )


def check_batch(count: int, max_batch: int, loc: tuple[str, ...]) -> None:
    if count > max_batch:
        raise invalid(loc, "too_long", f"List should have at most {max_batch} items")


class ProblemItem(Model):
    task_id: str | None = None
    index: int | None = None
    reason: str


class ProblemError(Model):
    loc: list[str | int]
    msg: str
    type: str


class Problem(Model):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str = Field(examples=["https://apiary.dev/problems/stale-fencing-token"])
    title: str
    status: int
    detail: str | None = None
    request_id: str | None = None
    errors: list[ProblemError] | None = Field(default=None, description="validation errors")
    items: list[ProblemItem] | None = Field(default=None, description="refused batch items")
    index: int | None = Field(default=None, description="the offending item of a batch")
    checks: dict[str, str] | None = Field(default=None, description="readiness checks")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problems a route may answer with."""
    return {s: {"model": Problem, "description": HTTPStatus(s).phrase} for s in statuses}


class Health(Model):
    status: str
    checks: dict[str, str] | None = None
