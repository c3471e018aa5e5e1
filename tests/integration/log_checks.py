"""Checks over the whole event log, for the features tests: what must never have happened."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime
from typing import Any
from uuid import UUID

from api.bootstrap import open_hive
from api.settings import Settings
from domain.bots import Bot
from domain.messages import Message
from domain.schedules import Schedule
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


def log_end(url: str) -> int:
    """The position of the last event in the log."""
    hive = open_hive(url, Settings())
    try:
        return hive.recorder.max_notification_id() or 0
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


def double_deliveries(events: list[Any]) -> list[str]:
    """Messages delivered to a bot other than the one they were last routed to, or again
    after their acknowledgement: must be none (either would be two recipients).

    A message is held by the bot it was last routed to; only a re-route (its bot was lost)
    moves it, so every delivery must name the bot of the latest ``Routed``.
    """
    routed: dict[UUID, UUID] = {}
    acknowledged: set[UUID] = set()
    found = []
    for e in events:
        if isinstance(e, Message.Routed):
            routed[e.originator_id] = e.bot_id
        elif isinstance(e, Message.Delivered):
            if e.originator_id in acknowledged:
                found.append(f"{e.originator_id} delivered to {e.bot_id} after its ack")
            elif routed.get(e.originator_id) != e.bot_id:
                found.append(f"{e.originator_id} delivered to {e.bot_id}, routed elsewhere")
        elif isinstance(e, Message.Acknowledged):
            acknowledged.add(e.originator_id)
    return found


def out_of_order(events: list[Any]) -> list[str]:
    """Messages delivered before the one before them in their conversation (to the same
    address) was acknowledged or dead: must be none."""
    after: dict[UUID, UUID] = {}
    finished: set[UUID] = set()
    delivered: set[UUID] = set()
    found = []
    for e in events:
        if isinstance(e, Message.Sent) and e.after is not None:
            after[e.originator_id] = e.after
        elif isinstance(e, (Message.Acknowledged, Message.DeadLettered)):
            finished.add(e.originator_id)
        elif isinstance(e, Message.Delivered) and e.originator_id not in delivered:
            delivered.add(e.originator_id)
            before = after.get(e.originator_id)
            if before is not None and before not in finished:
                found.append(f"{e.originator_id} delivered before {before} was done")
    return found


def pools_of_bots(events: list[Any]) -> dict[UUID, str | None]:
    return {e.originator_id: e.pool for e in events if isinstance(e, Bot.Registered)}


def count_by_type(events: list[Any]) -> dict[str, int]:
    counts: defaultdict[str, int] = defaultdict(int)
    for e in events:
        counts[type(e).__qualname__] += 1
    return dict(counts)


def fired_ticks(events: list[Any]) -> list[datetime]:
    """Every tick a schedule fired, repeats included (there must be none)."""
    return [e.tick for e in events if isinstance(e, (Schedule.Fired, Schedule.Released))]


def tick_faults(ticks: list[datetime], every_s: float) -> list[str]:
    """What is wrong with one interval schedule's fired ticks: repeats, or gaps."""
    faults = [f"{t} fired twice" for t in sorted(set(ticks)) if ticks.count(t) > 1]
    for a, b in itertools.pairwise(sorted(set(ticks))):
        if (b - a).total_seconds() != every_s:
            faults.append(f"ticks lost between {a} and {b}")
    return faults


def every_second_schedule(name: str, template: dict[str, Any]) -> dict[str, Any]:
    """A schedule body that fires every second and runs every missed tick: each one shows."""
    return {
        "name": name,
        "every_s": 1,
        "template": template,
        "overlap": "allow_all",
        "catchup": "run_all",
        "catchup_limit": 100,
    }
