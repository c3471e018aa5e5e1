"""Routing's explanations as the code before dispatch rounds made them: a complete dict
built per task (``domain/policies/routing.py`` at 7e0dc22, its scoring and dict-building
kept verbatim). The oracle of ``test_explanation.py``: what a round's record and a task's
choice make, through ``explain``, must equal this, byte for byte."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from domain.policies.aging import CEILING
from domain.policies.performance import Performance
from domain.policies.routing import (
    DEFAULT,
    POLICY,
    SHOWN,
    BotSlots,
    PendingTask,
    RoutingConfig,
    Stats,
    estimates,
)

Entry = tuple[float, int, int, int, dict[str, Any]]


def route_before_rounds(
    pending: Iterable[PendingTask],
    bots: Sequence[BotSlots],
    stats: Stats,
    now: float,
    config: RoutingConfig = DEFAULT,
) -> list[tuple[UUID, UUID, dict[str, Any]]]:
    """(task, bot, complete explanation) per assignment, in routing's order."""
    slots = [BotSlots(b.bot_id, b.capabilities, b.capacity, b.load) for b in bots]
    groups: dict[tuple[frozenset[str], str], _Group] = {}
    aging, step = config.aging, config.aging.step_s
    assignments = []
    for task in sorted(pending, key=aging.order(now)):
        group = groups.get((task.capabilities, task.type))
        if group is None:
            group = groups[task.capabilities, task.type] = _Group(task, slots, stats, config)
        ranked = group.ranked()
        if not ranked:
            continue
        waited = now - task.since if now > task.since else 0.0
        effective = task.priority + waited / step
        why = {
            "policy": POLICY,
            "type": task.type,
            "effective_priority": round(effective, 3) if effective < CEILING else CEILING,
            "waited_s": round(waited, 3),
            "required": group.required,
            "bots": [entry[4] for entry in ranked],
        }
        chosen = group.bots[ranked[0][2]]
        assignments.append((task.task_id, chosen.bot_id, why))
        chosen.load += 1
    return assignments


class _Group:
    def __init__(
        self, task: PendingTask, slots: list[BotSlots], stats: Stats, config: RoutingConfig
    ) -> None:
        self.required = sorted(task.capabilities)
        self.bots = [b for b in slots if task.capabilities <= b.capabilities and b.free > 0]
        records = [stats.get((b.bot_id, task.type)) for b in self.bots]
        best = min(
            (r.duration_s for r in records if r is not None and r.duration_s is not None),
            default=None,
        )
        self.base: list[float] = []
        self.inputs: list[dict[str, Any]] = []
        self.w_free = config.weights.free
        w = config.weights
        for bot, record in zip(self.bots, records, strict=True):
            success, speed = estimates(record, best, config.trial_samples)
            self.base.append(w.success * success + w.speed * speed)
            self.inputs.append(_inputs(bot, record))
        self.entries: list[Entry] = sorted(self._entry(i) for i in range(len(self.bots)))

    def _entry(self, i: int) -> Entry:
        bot = self.bots[i]
        free = bot.capacity - bot.load
        score = self.base[i] + self.w_free * free / bot.capacity
        shown = {"score": round(score, 4), "free": free, **self.inputs[i]}
        return (-score, bot.bot_id.int, i, bot.load, shown)

    def ranked(self) -> list[Entry]:
        entries, bots = self.entries, self.bots
        n = 0
        while n < SHOWN and n < len(entries):
            i, scored_at = entries[n][2], entries[n][3]
            bot = bots[i]
            if bot.load == scored_at:
                n += 1
                continue
            del entries[n]
            if bot.load < bot.capacity:
                bisect.insort(entries, self._entry(i))
        return entries[:n]


def _inputs(bot: BotSlots, record: Performance | None) -> dict[str, Any]:
    shown: dict[str, Any] = {"bot": str(bot.bot_id), "capacity": bot.capacity}
    if record is None:
        return {**shown, "samples": 0}
    return {
        **shown,
        "samples": record.samples,
        "success": round(record.success, 4),
        "duration_s": None if record.duration_s is None else round(record.duration_s, 4),
    }
