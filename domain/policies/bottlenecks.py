"""The bottleneck report's rules: (snapshot, thresholds) -> findings. Pure functions.

Each rule looks at one kind of trouble in a window (``domain/profile.py``) and says what
it found as a ``Finding``: the rule, a severity, a score, one sentence and the numbers it
used (``evidence``). ``findings`` runs them all and ranks them: by severity, then by
score. A score is how much time the trouble costs per second of the window: for a stage,
the task-seconds spent in it (the mean number of tasks in that stage at once: queue wait
summed over 5 minutes, over 300 s); for a loop or a route, the share of the time it was
busy; for a view, the seconds it needs to catch up per second of window. So a long wait of
many tasks outranks a long wait of one, and a rule that fires on a few milliseconds ranks
low.

Shares of end-to-end time are ratios of means (a stage's mean over the end to end's
mean), not of sums: in a window, stages end at different times, so a queue's waits and
the same tasks' ends need not fall in it together; the means do not depend on that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.profile import (
    END_TO_END,
    OVERHEAD,
    PICK_UP,
    QUEUE,
    RUN,
    LoopTimings,
    PoolProfile,
    Snapshot,
    TypeProfile,
)

SEVERITIES = ("critical", "warning", "info")  # most severe first


@dataclass(frozen=True)
class Thresholds:
    queue_share: float = 0.5  # queue wait's share of end to end for a finding
    pick_up_share: float = 0.3  # assigned -> started's share of end to end
    min_stage_s: float = 0.1  # a stage whose mean is under this is no bottleneck
    min_samples: int = 5  # fewer samples say nothing
    slow_bot_factor: float = 3.0  # a bot's run p50 over its type's
    overhead_ratio: float = 1.0  # overhead p50 over the run's p50
    loop_p99_s: float = 0.025  # a control loop's rounds
    cpu_bound_share: float = 0.8  # of a round's wall time on the CPU: CPU-bound
    route_p99_s: float = 0.5
    min_requests: int = 20
    view_lag_events: int = 1000
    pool_wait_ms: float = 10.0  # a database pool's mean wait for a connection


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # one of SEVERITIES
    score: float
    summary: str
    evidence: Mapping[str, Any]


Rule = Callable[[Snapshot, Thresholds], list[Finding]]


def queue_wait(s: Snapshot, th: Thresholds) -> list[Finding]:
    """Queue wait dominates a type's end to end; critical when the pool that serves it
    cannot grow (at its max_bots with work pending)."""
    out = []
    for t in s.types:
        share = _share(t, QUEUE, th)
        if share is None or share < th.queue_share:
            continue
        q = t.stages[QUEUE]
        pool = _serving(s, t)
        evidence: dict[str, Any] = {
            "type": t.type,
            "share": round(share, 3),
            "queue_p50_s": q.p50_s,
            "queue_p95_s": q.p95_s,
            "end_to_end_mean_s": round(t.stages[END_TO_END].mean_s, 4),
            "pending": t.pending,
        }
        summary = f"{_pct(share)} of end-to-end time for type `{t.type}` is queue wait"
        severity = "warning"
        if pool is None:
            summary += f"; {t.pending:,} pending and no pool serves it"
        else:
            evidence |= {
                "pool": pool.name,
                "bots": pool.bots,
                "max_bots": pool.max_bots,
                "at_max": pool.at_max,
                "pool_pending": pool.pending,
            }
            if pool.at_max:
                summary += (
                    f"; pool {pool.name} is at max_bots={pool.max_bots} "
                    f"with {pool.pending:,} pending"
                )
                severity = "critical" if pool.pending else "warning"
            else:
                summary += (
                    f"; pool {pool.name} has {pool.bots} of max_bots={pool.max_bots} "
                    f"with {pool.pending:,} pending"
                )
        out.append(Finding("queue_wait", severity, q.sum_s / s.window_s, summary, evidence))
    return out


def slow_start(s: Snapshot, th: Thresholds) -> list[Finding]:
    """Bots slow to pick up work: assigned -> started dominates a type's end to end."""
    out = []
    for t in s.types:
        share = _share(t, PICK_UP, th)
        if share is None or share < th.pick_up_share:
            continue
        p = t.stages[PICK_UP]
        summary = (
            f"{_pct(share)} of end-to-end time for type `{t.type}` is between assignment and "
            f"start (p50 {_dur(p.p50_s)}, p95 {_dur(p.p95_s)}): bots are slow to pick up work"
        )
        evidence = {"type": t.type, "share": round(share, 3), "p50_s": p.p50_s, "p95_s": p.p95_s}
        out.append(Finding("slow_start", "warning", p.sum_s / s.window_s, summary, evidence))
    return out


def slow_bot(s: Snapshot, th: Thresholds) -> list[Finding]:
    """A bot whose runs of a type take far longer (p50) than the type's runs do."""
    typical = {t.type: t.stages.get(RUN) for t in s.types}
    out = []
    for b in s.bots:
        for type_, run in b.runs.items():
            usual = typical.get(type_)
            if usual is None or usual.p50_s is None or run.p50_s is None:
                continue
            if run.count < th.min_samples or usual.p50_s <= 0:
                continue
            ratio = run.p50_s / usual.p50_s
            slower = run.p50_s - usual.p50_s
            if ratio < th.slow_bot_factor or slower < th.min_stage_s:
                continue
            summary = (
                f"bot {b.name} runs `{type_}` tasks in {_dur(run.p50_s)} (p50), "
                f"{ratio:.1f}x the type's {_dur(usual.p50_s)}"
            )
            evidence = {
                "bot_id": b.bot_id,
                "bot": b.name,
                "pool": b.pool,
                "type": type_,
                "bot_p50_s": run.p50_s,
                "type_p50_s": usual.p50_s,
                "runs": run.count,
            }
            score = slower * run.count / s.window_s
            out.append(Finding("slow_bot", "warning", score, summary, evidence))
    return out


def overhead_high(s: Snapshot, th: Thresholds) -> list[Finding]:
    """The hive's own time (end to end less the run) is large beside the run, and is not
    mostly queue wait (``queue_wait`` says that)."""
    out = []
    for t in s.types:
        o, run = t.stages.get(OVERHEAD), t.stages.get(RUN)
        if o is None or o.p50_s is None or o.count < th.min_samples:
            continue
        run_p50 = run.p50_s if run is not None and run.p50_s is not None else 0.0
        queue = t.stages[QUEUE].mean_s if QUEUE in t.stages else 0.0
        own = o.mean_s - queue
        if o.p50_s < th.overhead_ratio * run_p50 or o.p50_s < th.min_stage_s:
            continue
        if own < 0.5 * o.mean_s:
            continue
        summary = (
            f"orchestration overhead for type `{t.type}` is p50 {_dur(o.p50_s)} "
            f"(p95 {_dur(o.p95_s)}, p99 {_dur(o.p99_s)}) against a run of p50 {_dur(run_p50)}; "
            f"queue wait is {_dur(queue)} of it on average"
        )
        evidence = {
            "type": t.type,
            "overhead_p50_s": o.p50_s,
            "overhead_p95_s": o.p95_s,
            "overhead_p99_s": o.p99_s,
            "run_p50_s": run_p50,
            "queue_mean_s": round(queue, 4),
        }
        score = own * o.count / s.window_s
        out.append(Finding("overhead_high", "warning", score, summary, evidence))
    return out


def slow_loop(s: Snapshot, th: Thresholds) -> list[Finding]:
    """A control loop's rounds are slow. Spent on the CPU (``loop_cpu_bound``): more work
    per round, or a faster round, not a faster database, would help. Mostly off it
    (``loop_waits``): it waits on the database or a lock."""
    out = []
    for lp in s.process.loops:
        if lp.p99_s < th.loop_p99_s:
            continue
        head = f"{lp.name} rounds p99 {_dur(lp.p99_s)} at {lp.pending:,} pending"
        if lp.cpu_share >= th.cpu_bound_share:
            rule, summary = "loop_cpu_bound", f"{head}; the {lp.name} is CPU-bound"
        else:
            rule = "loop_waits"
            summary = (
                f"{head}, {_pct(lp.cpu_share)} of it on the CPU: "
                f"the {lp.name} waits (database, locks)"
            )
        out.append(Finding(rule, "warning", _busy(s, lp), summary, _loop(lp)))
    return out


def slow_route(s: Snapshot, th: Thresholds) -> list[Finding]:
    out = []
    for r in s.process.routes:
        if r.count < th.min_requests or r.p99_s < th.route_p99_s:
            continue
        summary = f"{r.route} p99 {_dur(r.p99_s)} over {r.count:,} requests (p50 {_dur(r.p50_s)})"
        evidence = {"route": r.route, "count": r.count, "p50_s": r.p50_s, "p99_s": r.p99_s}
        score = r.count * r.p50_s / s.window_s
        out.append(Finding("slow_route", "warning", score, summary, evidence))
    return out


def view_lag(s: Snapshot, th: Thresholds) -> list[Finding]:
    out = []
    for v in s.process.views:
        if v.lag_events < th.view_lag_events:
            continue
        behind_s = v.lag_events / v.events_per_s if v.events_per_s > 0 else None
        catch_up = "not moving" if behind_s is None else f"about {_dur(behind_s)} to catch up"
        summary = (
            f"view {v.view} is {v.lag_events:,} events behind, "
            f"applying {v.events_per_s:,.0f}/s ({catch_up})"
        )
        evidence = {
            "view": v.view,
            "lag_events": v.lag_events,
            "events_per_s": v.events_per_s,
            "catch_up_s": behind_s,
        }
        stuck = behind_s is None or behind_s > s.window_s
        score = float(v.lag_events) if behind_s is None else behind_s / s.window_s
        severity = "critical" if stuck else "warning"
        out.append(Finding("view_lag", severity, score, summary, evidence))
    return out


def pool_waits(s: Snapshot, th: Thresholds) -> list[Finding]:
    out = []
    for w in s.process.pools:
        if w.waiting <= 0 or w.wait_ms < th.pool_wait_ms:
            continue
        summary = (
            f"{w.process}'s database pool {w.pool}: {w.waiting:,} requests waited for a "
            f"connection, {w.wait_ms:,.0f} ms on average"
        )
        evidence = {
            "process": w.process,
            "pool": w.pool,
            "waiting": w.waiting,
            "wait_ms": w.wait_ms,
        }
        score = w.waiting * w.wait_ms / 1000 / s.window_s
        out.append(Finding("pool_waits", "warning", score, summary, evidence))
    return out


RULES: tuple[Rule, ...] = (
    queue_wait,
    slow_start,
    slow_bot,
    overhead_high,
    slow_loop,
    slow_route,
    view_lag,
    pool_waits,
)


def findings(s: Snapshot, th: Thresholds | None = None) -> list[Finding]:
    """Every rule's findings, the most severe first, then by score (highest first)."""
    th = th or Thresholds()
    found = [f for rule in RULES for f in rule(s, th)]
    return sorted(found, key=lambda f: (SEVERITIES.index(f.severity), -f.score))


def _share(t: TypeProfile, stage: str, th: Thresholds) -> float | None:
    """A stage's mean over the end to end's mean (at most 1), when both are known and the
    stage has enough samples and time to matter."""
    part, whole = t.stages.get(stage), t.stages.get(END_TO_END)
    if part is None or whole is None or part.count < th.min_samples or whole.mean_s <= 0:
        return None
    if part.mean_s < th.min_stage_s:
        return None
    return min(1.0, part.mean_s / whole.mean_s)


def _serving(s: Snapshot, t: TypeProfile) -> PoolProfile | None:
    """Of the pools that serve a type, one at its max with work pending, else the first."""
    pools = [p for p in (s.pool(n) for n in t.pools) if p is not None]
    stuck = [p for p in pools if p.at_max and p.pending]
    return next(iter(stuck or pools), None)


def _busy(s: Snapshot, lp: LoopTimings) -> float:
    return lp.rounds * lp.p50_s / s.window_s


def _loop(lp: LoopTimings) -> dict[str, Any]:
    return {
        "loop": lp.name,
        "rounds": lp.rounds,
        "p50_s": lp.p50_s,
        "p99_s": lp.p99_s,
        "cpu_share": lp.cpu_share,
        "items_per_round": lp.items,
        "pending": lp.pending,
    }


def _pct(share: float) -> str:
    return f"{round(share * 100)}%"


def _dur(seconds: float | None) -> str:
    """A duration as people read it: 45 ms, 1.2 s, 3.5 min."""
    if seconds is None:
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"
