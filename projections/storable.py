"""What a view does with an event it cannot store: it stores it escaped, and goes on.

The log is immutable, so an event with text PostgreSQL refuses (a NUL character in a text
column, a ``\\u0000`` escape in JSON text bound for jsonb, a lone surrogate that is not
UTF-8) may already be in someone's log, written by an older version that let it through.
A view that failed on it would fail on it forever: every restart reads the same page.
So when a page fails for its data (``psycopg.DataError``, or a ``UnicodeEncodeError``
before it is even sent), the runner applies it again with ``storable`` copies of its
events: every text the event carries, at any depth, with each NUL (and each JSON escape of
one) replaced by U+FFFD, the replacement character, and each lone surrogate by ``?``. The
log keeps the event as it was; the view shows where it was replaced, and the runner logs
the positions (never the text).
"""

from __future__ import annotations

import copy
from typing import Any

from domain.names import NUL_ESCAPE

REPLACEMENT = "\ufffd"


def storable_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if "\\u0000" in text:
        text = NUL_ESCAPE.sub(lambda m: m.group(1) + "\\ufffd", text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def storable(value: Any) -> Any:
    """``value`` with every text in it storable (a copy where anything changed)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(storable(v) for v in value)
    return value


def storable_event(event: Any) -> Any:
    """A copy of ``event`` (a domain event: immutable) with every attribute storable."""
    twin = copy.copy(event)
    for name, value in vars(event).items():
        object.__setattr__(twin, name, storable(value))
    return twin
