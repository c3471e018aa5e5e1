"""``python -m tests.bench.routing``: one dispatch round's policy alone, in milliseconds.

2,000 pending tasks (the dispatcher's largest page) over 20 bots of 256 slots with mixed
capabilities and learned records, and the shape ``make bench`` drains (4 bots, one type).
In process and deterministic (a seeded generator): the policy's cost, not the hive's.
"""

from __future__ import annotations

import random
import statistics
import time
from uuid import UUID

from domain.policies.performance import Performance
from domain.policies.routing import BotSlots, PendingTask, Stats, route

NOW = 1_900_000_000.0
TYPES = ("code", "analysis", "writing", "noop")


def fleet(rnd: random.Random, bots: int, types: tuple[str, ...]) -> tuple[list[BotSlots], Stats]:
    slots, stats = [], {}
    for _ in range(bots):
        caps = frozenset(rnd.sample(types, rnd.randint(min(2, len(types)), len(types))))
        bot = BotSlots(UUID(int=rnd.getrandbits(128)), caps, 256, rnd.randint(0, 100))
        slots.append(bot)
        for t in caps:
            if rnd.random() < 0.8:
                record = Performance(rnd.random(), rnd.random() * 3, rnd.randint(0, 50))
                stats[bot.bot_id, t] = record
    return slots, stats


def backlog(rnd: random.Random, n: int, types: tuple[str, ...]) -> list[PendingTask]:
    return [
        PendingTask(
            UUID(int=rnd.getrandbits(128)),
            rnd.randint(0, 9),
            seq,
            frozenset([t]),
            t,
            NOW - 600 * rnd.random(),
        )
        for seq, t in enumerate(rnd.choice(types) for _ in range(n))
    ]


def timed(tasks: list[PendingTask], bots: list[BotSlots], stats: Stats, runs: int = 30) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        route(tasks, bots, stats, NOW)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    rnd = random.Random(1)
    for label, n_bots, types in (
        ("2,000 tasks x 20 bots, 4 types", 20, TYPES),
        ("2,000 tasks x 20 bots, 1 type", 20, ("noop",)),
        ("2,000 tasks x 4 bots, 1 type (make bench's shape)", 4, ("noop",)),
    ):
        bots, stats = fleet(rnd, n_bots, types)
        print(f"route(): {label}: median {timed(backlog(rnd, 2000, types), bots, stats):.2f} ms")


if __name__ == "__main__":
    main()
