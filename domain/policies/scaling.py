"""Scaling: how many bots a pool wants, and what to do to get there. Pure functions.

``decide`` turns a pool's load into a desired size:

* work to host = pending tasks the pool can serve (``backlog``) + tasks its bots hold;
* by slots: enough bots to hold all of it at once, ``ceil(work / slots_per_bot)``;
* by rate, once a per-bot throughput has been observed: enough bots to clear the backlog
  within ``target_wait_s``, ``ceil(backlog / (throughput * target_wait_s))``, plus those
  busy with what is held; the smaller of the two wins (short tasks need fewer bots than
  slots would say; long ones are bounded by slots);
* urgency: a pending task older than ``max_oldest_wait_s`` asks for one more bot (and
  forbids shrinking);
* clamped to ``[min_bots, max_bots]``.

Against flapping: it grows as soon as the need is over the current size (after
``up_cooldown_s``), but shrinks only to the need of ``(1 + hysteresis)`` times the work,
and only ``down_cooldown_s`` after the last change; each change moves at most
``max_step`` bots.

``plan`` turns (desired, the pool's bots and launches) into actions: launch, drain the
idlest ready bots, stop drained bots that hold nothing, and give up on launches that did
not register in time. Repeated failed launches back off exponentially.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

POLICY = "backlog-rate-v1"


@dataclass(frozen=True)
class PoolLimits:
    min_bots: int = 0
    max_bots: int = 4
    slots_per_bot: int = 4
    max_step: int = 2
    up_cooldown_s: float = 1.0
    down_cooldown_s: float = 15.0
    target_wait_s: float = 10.0
    max_oldest_wait_s: float = 30.0
    hysteresis: float = 0.25
    launch_timeout_s: float = 20.0
    failure_backoff_s: float = 2.0
    max_failure_backoff_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_bots <= self.max_bots:
            raise ValueError("need 0 <= min_bots <= max_bots")
        if self.slots_per_bot < 1 or self.max_step < 1:
            raise ValueError("slots_per_bot and max_step must be at least 1")
        if self.hysteresis < 0 or self.target_wait_s <= 0:
            raise ValueError("hysteresis must be >= 0 and target_wait_s > 0")


@dataclass(frozen=True)
class PoolLoad:
    backlog: int  # pending tasks whose capabilities the pool's bots have
    held: int  # tasks assigned to or running on the pool's bots
    oldest_wait_s: float  # age of the oldest of the backlog (0 when none)
    throughput_per_bot: float | None  # finished tasks per second per bot; None: not seen yet


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str
    inputs: dict[str, Any] = field(compare=False)


def need(limits: PoolLimits, backlog: float, held: float, throughput: float | None) -> int:
    """Bots needed to host ``held`` and clear ``backlog`` (unclamped)."""
    by_slots = math.ceil((backlog + held) / limits.slots_per_bot)
    if throughput is None or throughput <= 0:
        return by_slots
    by_rate = math.ceil(held / limits.slots_per_bot) + math.ceil(
        backlog / (throughput * limits.target_wait_s)
    )
    return min(by_slots, by_rate)


def decide(limits: PoolLimits, load: PoolLoad, *, current: int, since_change_s: float) -> Decision:
    """The pool's desired size, moving from ``current`` (its last desired size)."""
    up = need(limits, load.backlog, load.held, load.throughput_per_bot)
    urgent = load.backlog > 0 and load.oldest_wait_s > limits.max_oldest_wait_s
    if urgent:
        up = max(up, current + 1)
    h = 1 + limits.hysteresis
    down = need(limits, load.backlog * h, load.held * h, load.throughput_per_bot)
    up, down = _clamp(limits, up), _clamp(limits, down)
    inputs = {
        "policy": POLICY,
        "backlog": load.backlog,
        "held": load.held,
        "oldest_wait_s": round(load.oldest_wait_s, 3),
        "throughput_per_bot": None
        if load.throughput_per_bot is None
        else round(load.throughput_per_bot, 3),
        "need": up,
        "current": current,
    }
    if current < limits.min_bots or current > limits.max_bots:
        target = _clamp(limits, current)
        return Decision(_step(limits, current, target), "limits", inputs)
    if up > current:
        if since_change_s < limits.up_cooldown_s:
            return Decision(current, "cooling down", inputs)
        return Decision(_step(limits, current, up), "backlog", inputs)
    if down < current and not urgent:  # never shrink while a task waits too long
        if since_change_s < limits.down_cooldown_s:
            return Decision(current, "cooling down", inputs)
        return Decision(_step(limits, current, down), "idle", inputs)
    return Decision(current, "steady", inputs)


def _clamp(limits: PoolLimits, n: int) -> int:
    return max(limits.min_bots, min(limits.max_bots, n))


def _step(limits: PoolLimits, current: int, target: int) -> int:
    if target > current:
        return min(target, current + limits.max_step)
    return max(target, current - limits.max_step)


# -- from a desired size to actions ------------------------------------------------------


@dataclass(frozen=True)
class PoolBot:
    bot_id: UUID
    launch_id: UUID | None
    state: str  # ready, draining or quarantined
    held: int
    started: float  # when its launch was requested: among equals, newer bots drain first


@dataclass(frozen=True)
class OpenLaunch:
    launch_id: UUID
    registered: bool
    stopping: bool
    age_s: float


@dataclass(frozen=True)
class Plan:
    launch: int = 0
    drain: tuple[UUID, ...] = ()  # bots
    stop: tuple[UUID, ...] = ()  # launches whose bot has drained
    give_up: tuple[UUID, ...] = ()  # launches that never registered in time

    @property
    def empty(self) -> bool:
        return not (self.launch or self.drain or self.stop or self.give_up)


def plan(
    limits: PoolLimits,
    desired: int,
    bots: Sequence[PoolBot],
    launches: Sequence[OpenLaunch],
    *,
    failures_in_a_row: int,
    since_failure_s: float,
) -> Plan:
    """What to do now so the pool's active size (ready bots + launches on their way)
    reaches ``desired``."""
    give_up = tuple(
        lx.launch_id
        for lx in launches
        if not lx.registered and not lx.stopping and lx.age_s > limits.launch_timeout_s
    )
    starting = sum(1 for lx in launches if not lx.registered and lx.launch_id not in give_up)
    ready = [b for b in bots if b.state == "ready"]
    active = len(ready) + starting
    launch = 0
    drain: tuple[UUID, ...] = ()
    if active < desired and since_failure_s >= backoff_s(limits, failures_in_a_row):
        launch = desired - active
    elif active > desired:
        idlest = sorted(ready, key=lambda b: (b.held, -b.started, b.bot_id.int))
        drain = tuple(b.bot_id for b in idlest[: active - desired])
    stopping = {lx.launch_id for lx in launches if lx.stopping or lx.registered}
    stop = tuple(
        b.launch_id
        for b in bots
        if b.state == "draining" and b.held == 0 and b.launch_id in stopping
    )
    return Plan(launch, drain, stop, give_up)


def backoff_s(limits: PoolLimits, failures_in_a_row: int) -> float:
    """Wait after ``failures_in_a_row`` failed launches before the next (0 for none)."""
    if failures_in_a_row <= 0:
        return 0.0
    return min(
        limits.max_failure_backoff_s, limits.failure_backoff_s * 2 ** (failures_in_a_row - 1)
    )
