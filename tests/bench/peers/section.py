"""The peers' marked section of docs/benchmarks.md: replaced in place, appended when
missing; the rest of the file is left as it is."""

from __future__ import annotations

BEGIN = "<!-- peers:begin -->"
END = "<!-- peers:end -->"


def find(text: str) -> tuple[int, int] | None:
    """The section's span, markers included (and the newline after the end marker)."""
    start = text.find(BEGIN)
    end = text.find(END, start)
    if start < 0 or end < 0:
        return None
    end += len(END)
    if text.startswith("\n", end):
        end += 1
    return start, end


def existing(text: str) -> str | None:
    span = find(text)
    return None if span is None else text[span[0] : span[1]]


def replace(text: str, section: str) -> str:
    span = find(text)
    if span is None:
        return f"{text.rstrip()}\n\n{section}" if text.strip() else section
    return text[: span[0]] + section + text[span[1] :]
