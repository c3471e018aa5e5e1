"""Checks over the whole event log, for the features tests: what must never have happened."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from api.bootstrap import open_hive
from api.settings import Settings
from domain.bots import Bot
from domain.tasks import Task


def log_events(url: str) -> list[Any]:
    """Every event in the log, decoded, in log order."""
    hive = open_hive(url, Settings())
    try:
        events, start = [], 1
        while True:
            page = hive.recorder.select_notifications(start, 1000)
            if not page:
                return events
            events += [hive.mapper.to_domain_event(n) for n in page]
            start = page[-1].id + 1
    finally:
        hive.close()


def double_holds(events: list[Any]) -> list[str]:
    """Tasks that were assigned while some bot still held them: must be none.

    A task is held from ``Assigned`` until it finishes, is cancelled or its lease expires;
    an ``Assigned`` inside that span would mean two bots holding one task at once.
    """
    holder: dict[UUID, UUID | None] = {}
    found = []
    for e in events:
        if not isinstance(e, Task.Event):
            continue
        if isinstance(e, Task.Assigned):
            if holder.get(e.originator_id) is not None:
                found.append(f"{e.originator_id} assigned to {e.bot_id} while held")
            holder[e.originator_id] = e.bot_id
        elif not isinstance(e, Task.Started):
            holder[e.originator_id] = None
    return found


def pools_of_bots(events: list[Any]) -> dict[UUID, str | None]:
    return {e.originator_id: e.pool for e in events if isinstance(e, Bot.Registered)}


def count_by_type(events: list[Any]) -> dict[str, int]:
    counts: defaultdict[str, int] = defaultdict(int)
    for e in events:
        counts[type(e).__qualname__] += 1
    return dict(counts)
