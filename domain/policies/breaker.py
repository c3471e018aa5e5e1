"""A circuit breaker per bot: when a bot that keeps failing stops getting work, and how it
earns it back.

A pure policy: the bot's recent attempts (when each ended, and whether it succeeded), the
breaker's config, the bot's breaker state and the time in; one decision (or None) out.

* **Closed** (the bot gets work). It trips when its last ``consecutive_failures`` attempts
  all failed (or its last ``slots``, for a bot of more slots than that: a bot reports
  the outcomes of its slots in batches, so the failures of attempts that ran side by side
  may come one after the other in the log, with its successes before them), or when at
  least ``min_attempts`` attempts ended within the last ``window_s`` and the share of
  failures among them is at least ``failure_rate``. The trip quarantines the bot for
  ``cooldown_s`` and carries the evidence.
* **Open** until its cooldown ends: then it gets one probe task (half-open).
* **Half-open** with one probe out: the probe's success reinstates the bot; its failure
  opens the breaker again for twice the cooldown, at most ``max_cooldown_s``.

What counts as a failure is the caller's to say (``runtime/breaker.py``): an attempt that
ended with a retryable failure, a lost bot or a timeout. A failure that is not retryable is
the task's own answer, not the bot's fault, and counts as neither.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

MAX_KINDS = 5  # the last errors' kinds the evidence names


@dataclass(frozen=True)
class BreakerConfig:
    enabled: bool = True
    consecutive_failures: int = 5
    failure_rate: float = 0.5  # 0..1
    window_s: float = 60.0
    min_attempts: int = 10
    cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0


@dataclass(frozen=True)
class Attempt:
    """How one of the bot's attempts ended."""

    at: datetime
    succeeded: bool
    kind: str | None = None  # a failure's kind: its error kind, or its outcome


@dataclass(frozen=True)
class Closed:
    pass


@dataclass(frozen=True)
class Open:
    until: datetime
    cooldown_s: float


@dataclass(frozen=True)
class HalfOpen:
    """One probe task out; ``probe`` is how it ended (None: not yet)."""

    cooldown_s: float
    probe: Attempt | None = None


BreakerState = Closed | Open | HalfOpen


@dataclass(frozen=True)
class Trip:
    evidence: dict[str, Any]
    cooldown_s: float


@dataclass(frozen=True)
class Probe:
    cooldown_s: float


@dataclass(frozen=True)
class Reinstate:
    pass


@dataclass(frozen=True)
class Reopen:
    evidence: dict[str, Any]
    cooldown_s: float


Decision = Trip | Probe | Reinstate | Reopen


@dataclass(frozen=True)
class Tally:
    """What the policy reads of a bot's recent attempts."""

    streak: int  # failures since its last success
    attempts: int  # attempts that ended within the window
    failures: int  # of those, the failures
    kinds: tuple[str | None, ...] = ()  # the last failures' kinds, at most ``MAX_KINDS``


def tally(history: Sequence[Attempt], config: BreakerConfig, now: datetime) -> Tally:
    """The tally of a whole history (oldest first): what ``RollingTally`` keeps as it goes."""
    since = now - timedelta(seconds=config.window_s)
    recent = [a for a in history if a.at > since]
    streak = 0
    for attempt in reversed(history):
        if attempt.succeeded:
            break
        streak += 1
    kinds = tuple(a.kind for a in history if not a.succeeded)[-MAX_KINDS:]
    return Tally(streak, len(recent), sum(not a.succeeded for a in recent), kinds)


class RollingTally:
    """A bot's tally kept as its attempts end, in their order: each costs O(1) (amortized),
    however many the window holds (a drain ends thousands a second on one bot)."""

    def __init__(self) -> None:
        self.recent: deque[Attempt] = deque()
        self.failures = 0
        self.streak = 0
        self.kinds: deque[str | None] = deque(maxlen=MAX_KINDS)

    def add(self, attempt: Attempt) -> None:
        self.recent.append(attempt)
        if attempt.succeeded:
            self.streak = 0
        else:
            self.streak += 1
            self.failures += 1
            self.kinds.append(attempt.kind)

    def at(self, config: BreakerConfig, now: datetime) -> Tally:
        since = now - timedelta(seconds=config.window_s)
        while self.recent and self.recent[0].at <= since:
            if not self.recent.popleft().succeeded:
                self.failures -= 1
        return Tally(self.streak, len(self.recent), self.failures, tuple(self.kinds))


def decide(
    recent: Tally,
    config: BreakerConfig,
    state: BreakerState,
    now: datetime,
    slots: int = 1,
) -> Decision | None:
    """What to do with the bot now; None: nothing. ``slots``: how many tasks the bot runs
    at once."""
    match state:
        case Closed():
            if not config.enabled:
                return None
            evidence = trip_evidence(recent, config, slots)
            return None if evidence is None else Trip(evidence, config.cooldown_s)
        case Open(until=until, cooldown_s=cooldown):
            return Probe(cooldown) if now >= until else None
        case HalfOpen(probe=None):
            return None
        case HalfOpen(cooldown_s=cooldown, probe=probe):
            assert probe is not None
            if probe.succeeded:
                return Reinstate()
            doubled = next_cooldown(cooldown, config)
            return Reopen({"rule": "probe", "kinds": [probe.kind], "cooldown_s": doubled}, doubled)
    return None


def next_cooldown(cooldown_s: float, config: BreakerConfig) -> float:
    """After a failed probe: twice the cooldown, at most ``max_cooldown_s``."""
    return min(cooldown_s * 2, config.max_cooldown_s)


def trip_evidence(recent: Tally, config: BreakerConfig, slots: int = 1) -> dict[str, Any] | None:
    """Why the breaker trips, or None when it does not."""
    rate = recent.failures / recent.attempts if recent.attempts else 0.0
    evidence = {
        "consecutive_failures": recent.streak,
        "attempts": recent.attempts,
        "failures": recent.failures,
        "window_s": config.window_s,
        "failure_rate": round(rate, 4),
        "kinds": list(recent.kinds),
    }
    if recent.streak >= streak_needed(config, slots):
        return {"rule": "consecutive", **evidence}
    if recent.failures and recent.attempts >= config.min_attempts and rate >= config.failure_rate:
        return {"rule": "rate", **evidence}
    return None


def streak_needed(config: BreakerConfig, slots: int) -> int:
    """The failures in a row that trip a bot of ``slots`` slots."""
    return max(config.consecutive_failures, slots)
