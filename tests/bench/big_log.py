"""A big log with a drain's real mix: `apiary audit verify` and `apiary projections rebuild`
(all views) over it, each timed as the real command in a process of its own.

The log is written in-process through the Hive's own commands (the real write path: the
aggregates, the recorder, the database's hash chain), in waves. Each wave writes what
`make bench`'s drain writes (``tests.bench.__main__.drain``, whose log was counted):

* its tasks submitted 1,000 per save (the batch endpoint's limit) while no bot is up;
* the dispatcher flags them unroutable: one record per page (2,000 tasks) and save;
* 4 bots register, each with its key (one save each);
* rounds until none is pending: the dispatcher routes as many tasks as the bots have free
  slots (the real policy, ``route``, with what it learned from earlier runs) in one save;
  each bot reports its share done in one save, each finish saying how long it ran (the
  bundled bot never reports a no-op's start: ``runtime/bot/worker.py``);
* the bots deregister.

Before the first wave, what a new hive's first `apiary serve` writes: the config seed, an
admin key and a bot enrolment key. Nothing is cached between runs: each run writes its log
into a fresh database.

Run alone: ``python -m tests.bench.big_log --events 1000000``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg

from api.bootstrap import open_hive
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive, Report, TaskSpec
from domain.keys import Role
from domain.policies.performance import Performance, observe
from domain.policies.routing import BotSlots, PendingTask, route
from runtime.config import Knobs
from tests.bench.alone import run_in_database
from tests.e2e.harness import apiary

TYPE = "noop"
SUBMIT_BATCH = 1000  # the batch endpoint's limit (APIARY_MAX_BATCH)
DISPATCH_PAGE = 2000  # the dispatcher's page
WAVE_TASKS = 20_000  # make bench's drain
BOTS = 4
CONCURRENCY = 256
EVENTS_PER_TASK = 3  # submitted, assigned, succeeded (saying its start)
EVENTS_PER_BOT = 3  # registered, its key issued, deregistered
# and per DISPATCH_PAGE tasks, one record of them as unroutable
FIRST_EVENTS = 3  # a new hive's first serve: the config seed, an admin and an enrolment key


@dataclass
class Fleet:
    """The wave's bots as routing sees them, and what the hive learned of them."""

    slots: list[BotSlots]
    stats: dict[tuple[UUID, str], Performance] = field(default_factory=dict)


def bot_cause(bot_id: UUID) -> Cause:
    return Cause(f"bot:{bot_id}", f"bot-{uuid4().hex}")


def write_log(hive: Hive, events: int) -> dict[str, Any]:
    """About ``events`` events: serve's first ones, then drains of ``WAVE_TASKS`` tasks
    (the last one smaller). Returns how many tasks and drains."""
    settings = Settings()
    hive.config.seed(
        Knobs.of(settings).document(),
        "seeded from the environment of the first process",
        Cause("process:all", "config-seed"),
    )
    hive.keys.issue("admin", Role.ADMIN, Cause("serve", "admin-key"))
    hive.keys.issue("bot", Role.BOT, Cause("admin", "enrol-key"))
    fleet = BOTS * EVENTS_PER_BOT
    flags = -(-WAVE_TASKS // DISPATCH_PAGE)
    full, rest = divmod(max(0, events - FIRST_EVENTS), WAVE_TASKS * EVENTS_PER_TASK + flags + fleet)
    sizes = [WAVE_TASKS] * full + [(rest - fleet - flags) // EVENTS_PER_TASK] * (
        rest > fleet + flags
    )
    for n, size in enumerate(sizes):
        wave(hive, size, first=n * WAVE_TASKS)
    return {"tasks": sum(sizes), "waves": len(sizes)}


def wave(hive: Hive, tasks: int, *, first: int) -> None:
    pending = submit(hive, tasks, first)
    rounds = 0
    for start in range(0, len(pending), DISPATCH_PAGE):
        rounds += 1
        ids = [p.task_id for p in pending[start : start + DISPATCH_PAGE]]
        hive.tasks.mark_unroutable(
            [TYPE],
            ids,
            f"no ready or quarantined bot has {TYPE}",
            [TYPE],
            Cause.engine("dispatcher", f"round-{rounds}"),
        )
    fleet = Fleet(
        [
            BotSlots(register(hive, f"drain-{i}"), frozenset({TYPE}), CONCURRENCY)
            for i in range(BOTS)
        ]
    )
    while pending:
        rounds += 1
        pending = dispatch(hive, fleet, pending, Cause.engine("dispatcher", f"round-{rounds}"))
    for bot in fleet.slots:
        hive.fleet.deregister(bot.bot_id, bot_cause(bot.bot_id))


def submit(hive: Hive, tasks: int, first: int) -> list[PendingTask]:
    pending = []
    for start in range(first, first + tasks, SUBMIT_BATCH):
        specs = [
            TaskSpec(TYPE, payload=f'{{"n":{n}}}')
            for n in range(start, min(first + tasks, start + SUBMIT_BATCH))
        ]
        committed = hive.tasks.submit(specs, Cause("admin", uuid4().hex))
        for position, event in committed.recorded:
            pending.append(
                PendingTask(
                    event.originator_id,
                    event.priority,
                    position,
                    frozenset(event.capabilities),
                    event.type,
                    event.timestamp.timestamp(),
                )
            )
    return pending


def register(hive: Hive, name: str) -> UUID:
    bot, _, _ = hive.fleet.register(
        name=name,
        capabilities=[TYPE],
        max_concurrency=CONCURRENCY,
        version_label="0.1.0",
        cause=Cause("bot", f"bot-{uuid4().hex}"),
    )
    return bot.id


def dispatch(
    hive: Hive, fleet: Fleet, pending: list[PendingTask], cause: Cause
) -> list[PendingTask]:
    """One round: assign what the free slots take, then each bot starts and finishes its
    share. Returns the tasks still pending."""
    free = sum(s.free for s in fleet.slots)
    page = pending[: min(DISPATCH_PAGE, free * 4)]
    assignments = route(page, fleet.slots, fleet.stats, time.time())
    assigned = hive.tasks.assign(assignments, cause).items
    taken = {t.id for t in assigned}
    by_bot: dict[UUID, list[Report]] = {}
    for task in assigned:
        assert task.bot_id is not None
        by_bot.setdefault(task.bot_id, []).append(Report(task.id, task.fencing_token))
    for bot_id, reports in by_bot.items():
        started = time.perf_counter()
        done = [Report(r.task_id, r.fencing_token, result="{}", ran_s=0.0) for r in reports]
        hive.tasks.finish(bot_id, done, bot_cause(bot_id))
        run_s = time.perf_counter() - started
        for _ in reports:
            key = (bot_id, TYPE)
            fleet.stats[key] = observe(fleet.stats.get(key), True, run_s)
    return [p for p in pending if p.task_id not in taken]


def event_mix(url: str) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT topic, count(*) FROM hive_events GROUP BY topic ORDER BY count(*) DESC, topic"
        ).fetchall()
    return [(str(topic), int(n)) for topic, n in rows]


def settle(url: str) -> None:
    """What a log a day old has had: vacuumed (hint bits, visibility map) and analysed."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")


def apiary_timed(url: str, *args: str) -> tuple[float, str]:
    """Wall time of one `apiary` command (a process of its own, as a person runs it)."""
    env = {**os.environ, "APIARY_DATABASE_URL": url, "APIARY_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    done = apiary(*args, env=env, check=False, timeout=3600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        msg = f"apiary {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}"
        raise RuntimeError(msg)
    return wall, done.stdout


def timed_runs(url: str, runs: int, *args: str) -> tuple[list[float], str]:
    walls, out = [], ""
    for _ in range(runs):
        wall, out = apiary_timed(url, *args)
        walls.append(wall)
    return walls, out


def measure_big_log(
    url: str, events: int, verify_runs: int = 3, rebuild_runs: int = 1
) -> dict[str, Any]:
    hive = open_hive(url, Settings())
    try:
        started = time.perf_counter()
        written = write_log(hive, events)
        build_s = time.perf_counter() - started
    finally:
        hive.close()
    mix = event_mix(url)
    total = sum(n for _, n in mix)
    settle(url)
    verify, report = timed_runs(url, verify_runs, "audit", "verify")
    if not report.startswith(f"OK {total} events"):
        msg = f"audit verify did not pass the whole log: {report}"
        raise RuntimeError(msg)
    rebuild, views = timed_runs(url, rebuild_runs, "projections", "rebuild")
    return {
        **written,
        "events": total,
        "build_s": round(build_s, 1),
        "build_per_s": total / build_s,
        "mix": mix,
        "verify_runs_s": [round(s, 2) for s in verify],
        "verify_s": statistics.median(verify),
        "rebuild_runs_s": [round(s, 2) for s in rebuild],
        "rebuild_s": statistics.median(rebuild),
        "views": view_costs(views),
        "replayed_s": float(REPLAYED.findall(views)[-1]),
    }


VIEW_COST = re.compile(
    r"^view (\S+) rebuilt up to position \d+ \(([\d,]+) events, ([\d.]+) s", re.M
)
REPLAYED = re.compile(r"^replayed in ([\d.]+) s", re.M)


def view_costs(output: str) -> list[tuple[str, int, float]]:
    """(view, events it applied, seconds in its own apply), from the rebuild's report."""
    return [
        (name, int(events.replace(",", "")), float(seconds))
        for name, events, seconds in VIEW_COST.findall(output)
    ]


def big_log_section(r: dict[str, Any]) -> str:
    """The section of docs/benchmarks.md."""
    mix = ", ".join(f"{topic.split(':')[-1]} {n:,}" for topic, n in r["mix"])
    verify = f"{r['verify_s']:.2f} s ({r['events'] / r['verify_s']:,.0f} events/s)"
    rebuild = f"{r['rebuild_s']:.1f} s ({r['events'] / r['rebuild_s']:,.0f} events/s)"
    runs = ", ".join(f"{s} s" for s in r["verify_runs_s"])
    rebuilds = ", ".join(f"{s} s" for s in r["rebuild_runs_s"])
    own = sum(seconds for _, _, seconds in r["views"])
    costs = "\n".join(
        f"| {name} | {events:,} | {seconds:.1f} s |"
        for name, events, seconds in r["views"]
        if events
    )
    return f"""## A big log

{r["events"]:,} events, written in-process through the Hive's commands (hash chain on) by
{r["waves"]} drain(s) like the one above ({r["tasks"]:,} tasks in all): the tasks submitted
1,000 per save while no bot is up and flagged unroutable by the dispatcher (one record per
2,000 tasks); then 4 bots (256 slots each) register, each round of assignments is
finished by each bot in a save of its own (each finish saying its start, as the bundled
bot reports no-ops), and the bots deregister ({r["build_s"]} s, {r["build_per_s"]:,.0f}
events/s). The log is then vacuumed; each command runs as its own `apiary` process, timed
wall clock, start-up included (verify: {runs}; rebuild of all {len(r["views"])} views:
{rebuilds}).

| measured | figure | floor |
|---|---|---|
| `apiary audit verify`, median | {verify} | <= 2 s |
| `apiary projections rebuild` (all views) | {rebuild} | <= 60 s |

The log's events: {mix}.

What each view costs in the rebuild, of its own (its apply: folding the page, its reads,
its writes up to the next read; the rebuild report of `apiary projections rebuild`). The
log is read and decoded once for all of them, and the rest of the {r["replayed_s"]:.1f} s
replay ({r["replayed_s"] - own:.1f} s) is that reading, the commits and the writes that
travel with them:

| view | events applied | its own time |
|---|---|---|
{costs}
"""


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.big_log", description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--verify-runs", type=int, default=3)
    ap.add_argument("--rebuild-runs", type=int, default=1)
    args = ap.parse_args(argv)

    def measure(url: str, home: Path) -> str:
        return big_log_section(
            measure_big_log(url, args.events, args.verify_runs, args.rebuild_runs)
        )

    return run_in_database("biglog", measure)


if __name__ == "__main__":
    sys.exit(main())
