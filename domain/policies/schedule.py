"""What a schedule does now: which ticks fire, which wait, which are dropped, and why.

``due(timing, now, previous_run_open)`` is pure: the caller says what time it is and
whether the schedule's previous task is still open, and gets a ``Decision`` back. Every
tick in ``(after, now]`` is decided exactly once (fired, buffered or skipped), so a tick
that is due is never lost and never decided twice: the schedule records the latest tick
decided, and the next call starts after it.

Catch-up (ticks that fell due while no engine was looking): the latest due tick is *on
time* when it is at most ``grace`` (60 s) old; every other due tick is *missed*.

* ``skip``: missed ticks are dropped; an on-time tick runs.
* ``run_once``: one run stands for all of them: the latest due tick runs, the rest are
  dropped.
* ``run_all``: the latest ``catchup_limit`` due ticks run (oldest first); older ones are
  dropped. A decision never runs more than ``catchup_limit`` ticks.

Overlap (a tick is due while the schedule's previous task is still open; ticks of one
decision are taken oldest first, so a tick that runs makes the next one overlap):

* ``skip``: the tick is dropped.
* ``buffer_one``: the first such tick waits in the buffer and runs as soon as the
  previous task finishes; while the buffer is full, further ones are dropped.
* ``allow_all``: it runs anyway.

Dropped ticks are reported as one ``Skip`` per reason per decision, with a count. A
paused schedule decides nothing; the ticks that pass while it is paused are never run
(resuming starts from the resume time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.policies.triggers import DueTicks, Trigger

MISFIRE_GRACE = timedelta(seconds=60)
MAX_TICKS_PER_DECISION = 10_000  # bounds one decision's work after a very long outage
MIN_CATCHUP_LIMIT, MAX_CATCHUP_LIMIT = 1, 1000
INSTANT = timedelta(microseconds=1)


class Overlap(StrEnum):
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    ALLOW_ALL = "allow_all"


class Catchup(StrEnum):
    SKIP = "skip"
    RUN_ONCE = "run_once"
    RUN_ALL = "run_all"


class SkipReason(StrEnum):
    MISSED = "missed"  # fell due while no engine was looking; dropped by catch-up
    OVERLAP = "overlap"  # the previous run was still open


@dataclass(frozen=True)
class Timing:
    """Where a schedule stands in time: what ``due`` needs of it."""

    trigger: Trigger
    overlap: Overlap
    catchup: Catchup
    catchup_limit: int
    not_before: datetime  # no tick before this: the start, or the last resume
    last_tick: datetime | None  # the latest tick decided
    buffered: datetime | None  # a tick waiting for the previous run to finish
    active: bool

    @property
    def after(self) -> datetime:
        """Ticks strictly after this one are still to be decided."""
        floor = self.not_before - INSTANT
        return floor if self.last_tick is None else max(self.last_tick, floor)


def next_tick(timing: Timing) -> datetime | None:
    """The next tick to decide (None: the trigger never fires again)."""
    return next(timing.trigger.ticks_after(timing.after), None)


@dataclass(frozen=True)
class Skip:
    first: datetime
    last: datetime
    count: int
    reason: SkipReason


@dataclass(frozen=True)
class Decision:
    """In the order the schedule records it (ticks increase along it): release the
    buffered tick, drop the missed ticks, fire, buffer one, drop the overlapping ones."""

    release: datetime | None = None
    missed: Skip | None = None
    fire: tuple[datetime, ...] = ()
    buffer: datetime | None = None
    overlapped: Skip | None = None
    more: bool = False  # more ticks are due than one decision takes: decide again at once

    @property
    def empty(self) -> bool:
        return self == NOTHING


NOTHING = Decision()


def due(
    timing: Timing,
    now: datetime,
    previous_run_open: bool,
    *,
    grace: timedelta = MISFIRE_GRACE,
) -> Decision:
    if not timing.active:
        return NOTHING
    release = None
    running = previous_run_open
    if timing.buffered is not None and not running:
        release, running = timing.buffered, True
    keep = timing.catchup_limit + 1 if timing.catchup is Catchup.RUN_ALL else 2
    ticks = timing.trigger.due_ticks(timing.after, now, keep, MAX_TICKS_PER_DECISION)
    if not ticks.complete:  # a long outage: drop the oldest chunk, then look again
        assert ticks.first is not None and ticks.last is not None
        chunk = Skip(ticks.first, ticks.last, ticks.count, SkipReason.MISSED)
        return Decision(release=release, missed=chunk, more=True)
    if ticks.count == 0:
        return Decision(release=release)
    run, missed = _catch_up(timing, ticks, now, grace)
    buffer_full = timing.buffered is not None and release is None
    fire, buffer, overlapped = _overlap(timing.overlap, run, running, buffer_full)
    return Decision(release, missed, fire, buffer, overlapped)


def _catch_up(
    timing: Timing, ticks: DueTicks, now: datetime, grace: timedelta
) -> tuple[tuple[datetime, ...], Skip | None]:
    """The ticks to run, oldest first, and the missed ones dropped."""
    latest = ticks.latest[-1]
    on_time = now - latest <= grace
    if timing.catchup is Catchup.RUN_ALL:
        run = ticks.latest[-timing.catchup_limit :]
    elif timing.catchup is Catchup.RUN_ONCE or on_time:
        run = (latest,)
    else:
        run = ()
    dropped = ticks.count - len(run)
    if dropped == 0:
        return run, None
    assert ticks.first is not None
    last_dropped = ticks.latest[-len(run) - 1]
    return run, Skip(ticks.first, last_dropped, dropped, SkipReason.MISSED)


def _overlap(
    policy: Overlap, run: tuple[datetime, ...], running: bool, buffer_full: bool
) -> tuple[tuple[datetime, ...], datetime | None, Skip | None]:
    fire: list[datetime] = []
    buffer = None
    dropped: list[datetime] = []
    for tick in run:
        if policy is Overlap.ALLOW_ALL or not running:
            fire.append(tick)
            running = True
        elif policy is Overlap.BUFFER_ONE and buffer is None and not buffer_full:
            buffer = tick
        else:
            dropped.append(tick)
    overlapped = (
        Skip(dropped[0], dropped[-1], len(dropped), SkipReason.OVERLAP) if dropped else None
    )
    return tuple(fire), buffer, overlapped
