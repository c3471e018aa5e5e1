"""When a failed attempt is tried again, and when the hive gives up on a task.

A pure policy: the task's attempt, the failure's kind, the policy in force and the time
in; ``Retry`` (when the next attempt is due) or ``GiveUp`` (why not) out. The delay before
attempt n + 1 is ``initial_backoff_s * multiplier ** (n - 1)``, capped at
``max_backoff_s``; jitter only ever adds (up to ``jitter`` of the delay, still capped), so
the gap between two attempts is never shorter than the backoff. The jitter is drawn from
the task's id, series and attempt, not from a random source: deciding again (a save that
collided, a replay) gives the same instant.

Giving up comes in two kinds: a failure that is not retryable (the bot said so, or its
kind is one the policy never retries) is the task's answer, and the task is ``failed``; a
retryable failure past the last attempt is poison or bad luck that an operator should
look at, and the task is dead-lettered.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

MAX_ATTEMPTS = 100
MAX_BACKOFF_S = 7 * 24 * 3600.0
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_MULTIPLIER = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # attempts in all, the first included: 1 never retries
    initial_backoff_s: float = 1.0
    multiplier: float = 2.0
    max_backoff_s: float = 60.0
    jitter: float = 0.1  # a fraction of the delay, added
    non_retryable: frozenset[str] = field(default_factory=frozenset)  # error kinds
    timeout_s: float | None = None  # an attempt running longer is failed (kind "timeout")

    def narrowed(self, limits: RetryLimits | None) -> RetryPolicy:
        """This policy as a submission narrowed it (never widened: the policy in force
        may have been narrowed since the submission)."""
        if limits is None:
            return self
        attempts = self.max_attempts
        if limits.max_attempts is not None:
            attempts = min(attempts, limits.max_attempts)
        return replace(
            self, max_attempts=attempts, timeout_s=_least(self.timeout_s, limits.timeout_s)
        )


@dataclass(frozen=True)
class RetryLimits:
    """What one submission asks of its task's policy: fewer attempts, a shorter timeout."""

    max_attempts: int | None = None
    timeout_s: float | None = None

    def as_dict(self) -> dict[str, float | int]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class Retry:
    delay_s: float
    at: datetime


@dataclass(frozen=True)
class GiveUp:
    reason: str
    dead: bool  # dead-lettered (retries exhausted); False: failed for good (not retryable)


def backoff(policy: RetryPolicy, attempt: int) -> float:
    """The delay after attempt ``attempt`` (1-based) failed, before jitter."""
    exponent = min(max(attempt - 1, 0), MAX_ATTEMPTS)  # at most 10 ** 100: a float
    return min(policy.initial_backoff_s * policy.multiplier**exponent, policy.max_backoff_s)


def jitter_fraction(task_id: UUID, series: int, attempt: int) -> float:
    """A number in [0, 1) drawn from the attempt's identity: the same on every decision."""
    digest = hashlib.sha256(f"{task_id}:{series}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def decide_retry(
    policy: RetryPolicy,
    *,
    attempt: int,
    error_kind: str | None,
    retryable: bool,
    now: datetime,
    draw: float,
) -> Retry | GiveUp:
    """``attempt`` (1-based) has just failed; ``draw`` in [0, 1) sets the jitter."""
    if not retryable:
        return GiveUp("not retryable: the bot said so", dead=False)
    if error_kind is not None and error_kind in policy.non_retryable:
        return GiveUp(f"not retryable: error kind {error_kind!r}", dead=False)
    if attempt >= policy.max_attempts:
        return GiveUp(f"attempts exhausted: {attempt} of {policy.max_attempts}", dead=True)
    base = backoff(policy, attempt)
    delay = min(base * (1 + policy.jitter * draw), policy.max_backoff_s)
    delay = max(delay, base)  # the cap never cuts below the backoff itself
    return Retry(round(delay, 6), now + timedelta(seconds=round(delay, 6)))


N = TypeVar("N", int, float)


def deadline(
    began: datetime | None, policy_timeout_s: float | None, asked_timeout_s: float | None
) -> datetime | None:
    """When an attempt begun at ``began`` times out: after its policy's timeout, narrowed by
    what its submission asked; None when it has neither, or has not begun."""
    timeout = _least(policy_timeout_s, asked_timeout_s)
    return None if began is None or timeout is None else began + timedelta(seconds=timeout)


def _least(configured: N | None, asked: N | None) -> N | None:
    if asked is None:
        return configured
    if configured is None:
        return asked
    return min(configured, asked)
