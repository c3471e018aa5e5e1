"""Routing: which bot gets which pending task. Pure: (pending tasks, bots, what the hive
learned of each bot, now) -> assignments, each with the inputs and the score that decided it.

Order: by effective priority, highest first, then oldest first (``aging.py``: waiting
raises a task's priority, so low priority never starves).

Choice: a task's candidates are the given bots (the caller passes only bots that accept
work) with every capability it needs and a free slot. Each candidate gets a score in 0..1:

    score   = 0.5 * success + 0.2 * speed + 0.3 * free / capacity
    success = trust * r.success + (1 - trust)                      trust = min(n, TRIAL) / TRIAL
    speed   = trust * (best + F) / (r.duration_s + F) + (1 - trust)          F = 0.05 s

``r`` is what the hive learned of the bot on the task's type (``performance.py``), ``n`` its
samples, ``best`` the shortest learned duration among the candidates for that type (a bot
with samples but no successful run yet has speed 0; one with none is all prior). The
highest score wins; ties go to the lower bot id. So:

* success weighs most: a bot that keeps failing a type gets that type only when the
  bots that do it well are full or much busier (a gap of 0.6 in success rate outweighs
  the whole capacity term). Capacity is the constraint, the score only a preference: a task
  is never held back while a capable bot has a free slot.
* a **fair trial**: a bot with fewer than ``TRIAL`` samples of a type is scored partly at
  the optimistic prior (always succeeds, as fast as the best), so a new bot gets work and
  with it the samples that then decide; a proven peer at its best merely ties with it.
* among equally good bots the free-capacity term spreads the load, as a share of each
  bot's capacity; scores only fall as a round fills bots up.

**Retries go elsewhere.** A task tried again names the bots whose attempts of its current
series failed (``PendingTask.avoid``): such a bot is a candidate only when no other
capable bot has a free slot, however it scores. A task that never failed costs nothing
more (its ``avoid`` is empty); one that did walks its group's ranking past the bots it
avoids, and the bot chosen comes first in its choice as always.

Each decision is explained: the policy, the task's effective priority and wait, what it
required, and for the chosen bot and up to two runners-up their inputs and scores. What of
that the round's tasks share is made once per (capabilities, type) group, in the round's
``RoundInputs``; each ``Assignment`` carries only its task's choice, relative to them, and
``Assignment.why`` makes the complete explanation on demand (``explanation.py``).
Cost: O(tasks x log(candidates)) after O(candidates) per (capabilities, type) per round.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

from domain.policies.aging import CEILING, Aging
from domain.policies.explanation import Choice, Group, RoundInputs, score_of
from domain.policies.performance import Performance

POLICY = "adaptive-1"
W_SUCCESS, W_SPEED, W_FREE = 0.5, 0.2, 0.3


@dataclass(frozen=True)
class Weights:
    """How much each part counts in a bot's score (each >= 0, together > 0)."""

    success: float = W_SUCCESS
    speed: float = W_SPEED
    free: float = W_FREE

    def __post_init__(self) -> None:
        parts = (self.success, self.speed, self.free)
        if min(parts) < 0 or sum(parts) <= 0:
            raise ValueError("routing weights must be >= 0 and not all 0")


TRIAL_SAMPLES = 5
DURATION_FLOOR_S = 0.05  # runs this short are alike: noise in them must not decide
SHOWN = 3  # bots recorded per decision: the chosen one and the runners-up

Stats = Mapping[tuple[UUID, str], Performance]


class PendingTask(NamedTuple):
    """A pending task as routing sees it (a tuple: thousands are made per round)."""

    task_id: UUID
    priority: int
    seq: int  # log position of the submission
    capabilities: frozenset[str]
    type: str = ""
    since: float = 0.0  # waiting since (seconds since the epoch): submitted, or due if later
    avoid: frozenset[UUID] = frozenset()  # bots whose attempts of its series failed


@dataclass
class BotSlots:
    bot_id: UUID
    capabilities: frozenset[str]
    capacity: int
    load: int = 0

    @property
    def free(self) -> int:
        return self.capacity - self.load


@dataclass(frozen=True)
class Assignment:
    """A task for a bot, and why: its ``choice`` in the round ``shared`` (routing's), or,
    without a round, the complete explanation itself (an assignment made by hand)."""

    task_id: UUID
    bot_id: UUID
    choice: Choice = field(compare=False)
    shared: RoundInputs | None = field(default=None, compare=False)

    @property
    def why(self) -> dict[str, Any]:
        """The complete explanation."""
        return self.choice if self.shared is None else self.shared.explain(self.choice)


@dataclass(frozen=True)
class RoutingConfig:
    aging: Aging = field(default_factory=Aging)
    trial_samples: int = TRIAL_SAMPLES
    weights: Weights = field(default_factory=Weights)


DEFAULT = RoutingConfig()


def estimates(
    record: Performance | None, best_duration_s: float | None, trial_samples: int
) -> tuple[float, float]:
    """(success, speed) as the score uses them, each in 0..1."""
    if record is None:
        return 1.0, 1.0
    trust = min(record.samples, trial_samples) / trial_samples if trial_samples > 0 else 1.0
    speed = 0.0  # tried, and never done: as slow as the evidence allows
    if record.duration_s is not None:
        best = record.duration_s if best_duration_s is None else best_duration_s
        floor = DURATION_FLOOR_S
        speed = min(1.0, (best + floor) / (record.duration_s + floor))
    prior = 1.0 - trust
    return trust * record.success + prior, trust * speed + prior


def score(
    free: int,
    capacity: int,
    record: Performance | None,
    best_duration_s: float | None,
    trial_samples: int = TRIAL_SAMPLES,
    weights: Weights = Weights(),
) -> float:
    success, speed = estimates(record, best_duration_s, trial_samples)
    return score_of(weights.success * success + weights.speed * speed, weights.free, free, capacity)


def route(
    pending: Iterable[PendingTask],
    bots: Sequence[BotSlots],
    stats: Stats,
    now: float,
    config: RoutingConfig = DEFAULT,
) -> list[Assignment]:
    """Assign as many pending tasks as free capacity allows, most urgent first.

    ``bots`` are copied: the caller's loads are left as they were.
    """
    slots = [BotSlots(b.bot_id, b.capabilities, b.capacity, b.load) for b in bots]
    groups: dict[tuple[frozenset[str], str], _Group] = {}
    shared = RoundInputs(POLICY)
    aging, step = config.aging, config.aging.step_s
    assignments: list[Assignment] = []
    for task in sorted(pending, key=aging.order(now)):
        group = groups.get((task.capabilities, task.type))
        if group is None:
            group = _Group(len(shared.groups), task, slots, stats, config)
            groups[task.capabilities, task.type] = group
            shared.groups.append(group.shared)
        ranked = group.avoiding(task.avoid) if task.avoid else group.ranked()
        if not ranked:
            continue
        waited = now - task.since if now > task.since else 0.0
        effective = task.priority + waited / step
        choice = {
            "group": group.index,
            "effective_priority": round(effective, 3) if effective < CEILING else CEILING,
            "waited_s": round(waited, 3),
            "bots": [[i, free] for _, _, i, free in ranked],
        }
        chosen = group.bots[ranked[0][2]]
        assignments.append(Assignment(task.task_id, chosen.bot_id, choice, shared))
        chosen.load += 1  # every entry of this bot, in every group, is stale now
    return assignments


# An entry: (-score, bot id as int, index in the group, the bot's free slots when scored).
Entry = tuple[float, int, int, int]


class _Group:
    """The candidates for one (capabilities, type) in one round, best first.

    Scores change only when a bot's load does, and only downwards, so entries are
    re-scored lazily: an entry near the top whose bot took work since it was scored is
    taken out, re-scored and put back in order (or dropped when the bot is full)."""

    def __init__(
        self,
        index: int,
        task: PendingTask,
        slots: list[BotSlots],
        stats: Stats,
        config: RoutingConfig,
    ) -> None:
        self.index = index  # in the round's groups
        self.bots = [b for b in slots if task.capabilities <= b.capabilities and b.free > 0]
        records = [stats.get((b.bot_id, task.type)) for b in self.bots]
        best = min(
            (r.duration_s for r in records if r is not None and r.duration_s is not None),
            default=None,
        )
        w = config.weights
        self.base: list[float] = []
        inputs: list[dict[str, Any]] = []
        for bot, record in zip(self.bots, records, strict=True):
            success, speed = estimates(record, best, config.trial_samples)
            self.base.append(w.success * success + w.speed * speed)
            inputs.append(_inputs(bot, record))
        self.w_free = w.free
        self.shared: Group = {  # what every choice of this group is explained by
            "type": task.type,
            "required": sorted(task.capabilities),
            "w_free": self.w_free,
            "bots": inputs,
            "base": self.base,
        }
        self.entries: list[Entry] = sorted(self._entry(i) for i in range(len(self.bots)))

    def _entry(self, i: int) -> Entry:
        bot = self.bots[i]
        free = bot.capacity - bot.load
        return (-score_of(self.base[i], self.w_free, free, bot.capacity), bot.bot_id.int, i, free)

    def ranked(self, depth: int = SHOWN) -> list[Entry]:
        """The best ``depth`` entries, each scored at its bot's current load."""
        entries, bots = self.entries, self.bots
        n = 0
        while n < depth and n < len(entries):
            i, scored_free = entries[n][2], entries[n][3]
            bot = bots[i]
            if bot.free == scored_free:
                n += 1
                continue
            del entries[n]  # its new score is lower: it goes back in at n or after
            if bot.load < bot.capacity:
                bisect.insort(entries, self._entry(i))
        return entries[:n]

    def avoiding(self, avoid: frozenset[UUID]) -> list[Entry]:
        """As ``ranked``, but the best entry whose bot is not in ``avoid`` comes first
        (when there is one): the ranking is walked further only when the best few are
        all avoided."""
        ranked = self.ranked()
        better = next((e for e in ranked if self.bots[e[2]].bot_id not in avoid), None)
        if better is None:
            deeper = self.ranked(len(self.entries))
            better = next((e for e in deeper if self.bots[e[2]].bot_id not in avoid), None)
        if better is None or better is ranked[0]:
            return ranked
        return [better, *(e for e in ranked if e is not better)][:SHOWN]


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
