"""A task's timeline on the dashboard: its events as the log holds them, the unroutable
records that flagged it, and each assignment's explanation complete.

An assignment that names a dispatch round carries only its own choice; the round's record
(one read of the log for all the rounds a timeline names) makes it whole, with the same
``explain`` the tasks view uses, so the timeline shows what ``GET /v1/tasks/{id}`` shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID

from api.ports import History
from domain.policies.explanation import explain


def task_timeline(history: History, task_id: UUID, flagged_at: Sequence[int] | None) -> list[Any]:
    entries = history.of(task_id)
    if flagged_at:  # the records that flagged it: part of its story
        entries = sorted([*entries, *history.at(list(flagged_at))], key=lambda e: e.position)
    named = {r for e in entries if (r := _round_of(e)) is not None}
    if not named:
        return entries
    rounds = history.made(list(named))
    return [_explained(e, rounds) for e in entries]


def _round_of(entry: Any) -> UUID | None:
    return entry.fields.get("round_id") if entry.kind == "Assigned" else None


def _explained(entry: Any, rounds: dict[UUID, Any]) -> Any:
    round_id = _round_of(entry)
    if round_id is None:
        return entry
    made = rounds[round_id]
    why = explain(made.policy, made.groups, entry.fields["why"])
    return replace(entry, fields={**entry.fields, "why": why})
