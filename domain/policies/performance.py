"""What the hive has learned of how a bot does one type of task: exponentially weighted.

Each outcome moves the record a fraction ``alpha`` of the way towards it:

    success'  = success  + alpha * (outcome - success)        outcome: 1 succeeded, 0 failed
    duration' = duration + alpha * (run_s - duration)          successful runs only (runs.py)

so the last ``1/alpha`` outcomes or so carry most of the weight: a bot that starts failing a
type (a broken dependency, a bad release) loses its standing within a few runs, and one that
is fixed regains it as quickly. The first outcome seeds the record. ``alpha`` is the setting
``APIARY_ROUTING_ALPHA`` (default 0.2): changing it applies to new outcomes; rebuilding the
view recomputes the old ones with it.

The same ``observe`` feeds the ``bot_performance_view`` projection and the engine's copy in
memory, so both agree with each other and with a rebuild from zero.
"""

from __future__ import annotations

from dataclasses import dataclass

ALPHA = 0.2


@dataclass(frozen=True)
class Performance:
    success: float  # weighted success rate, 0..1
    duration_s: float | None  # weighted time of a successful run; None until there was one
    samples: int  # outcomes observed


def check_alpha(alpha: float) -> float:
    if not 0 < alpha <= 1:
        raise ValueError("the learning rate alpha must be in (0, 1]")
    return alpha


def observe(
    record: Performance | None, succeeded: bool, duration_s: float | None, alpha: float = ALPHA
) -> Performance:
    outcome = 1.0 if succeeded else 0.0
    if record is None:
        return Performance(outcome, duration_s, 1)
    success = min(1.0, max(0.0, record.success + alpha * (outcome - record.success)))
    duration = record.duration_s
    if duration_s is not None:
        if duration is None:
            duration = duration_s
        else:  # clamped: rounding must never take the average outside what it averages
            mixed = (1 - alpha) * duration + alpha * duration_s
            duration = min(max(mixed, min(duration, duration_s)), max(duration, duration_s))
    return Performance(success, duration, record.samples + 1)
