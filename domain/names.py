"""Rules for the short names the hive uses: task types, capabilities, bot names."""

from __future__ import annotations

import re

from domain.errors import InvalidInput

SHORT_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
MAX_CAPABILITIES = 32


def check_short_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not SHORT_NAME.match(value):
        raise InvalidInput(
            f"{kind} must be a short name: lowercase letters, digits, '_', '.', '-', "
            f"starting with a letter, at most 64 characters (got {value!r})"
        )
    return value


def check_capabilities(values: list[str] | tuple[str, ...]) -> list[str]:
    if not values:
        raise InvalidInput("at least one capability is required")
    if len(values) > MAX_CAPABILITIES:
        raise InvalidInput(f"at most {MAX_CAPABILITIES} capabilities")
    return sorted({check_short_name("capability", v) for v in values})


MAX_TEXT = 4096


# A JSON escape of NUL: "\u0000" preceded by an even number of backslashes (an odd number
# would make it the text "\u0000" with an escaped backslash, which is fine). Group 1: those
# backslashes.
NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def check_json_text(kind: str, text: str) -> str:
    """JSON text the views can hold: PostgreSQL's jsonb cannot store a NUL character."""
    if NUL_ESCAPE.search(text):
        raise InvalidInput(f"{kind} must not contain NUL characters (\\u0000)")
    return text


def unstorable(text: str) -> str | None:
    """What keeps ``text`` out of the hive (None: nothing): every text of every input
    obeys this one rule. PostgreSQL's text and jsonb hold no NUL character, and UTF-8 has
    no lone surrogate."""
    if "\x00" in text:
        return "must not contain NUL characters"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must not contain lone surrogates (text that is not UTF-8)"
    return None


def check_text(kind: str, text: str) -> str:
    problem = unstorable(text)
    if problem is not None:
        raise InvalidInput(f"{kind} {problem}")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"{kind} must be at most {MAX_TEXT} characters")
    return text
