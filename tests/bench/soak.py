"""Memory soak: `apiary serve` with 4 bots under a steady stream of tasks; its RSS over time.

``tasks`` no-op tasks are submitted in batches at ``rate`` tasks/s while 4 bot processes
drain them; serve's resident set size is sampled every second (psutil). The run passes
when serve's RSS over the last half stays within 10% of its RSS at the half-way point
(after warm-up the caches are full: they are bounded by bytes, ``aggregate_cache_mb`` and
``decoded_events_mb``, not by count).

Run alone: ``python -m tests.bench.soak [--tasks N] [--rate R]``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

import psutil
import psycopg

from tests.bench.alone import run_alone
from tests.e2e.harness import Hive, start_bot
from tests.waiting import wait_for

BATCH = 500
SAMPLE_S = 1.0


def soak(hive: Hive, tasks: int, rate: float, bots: int = 4) -> dict[str, Any]:
    assert hive.proc is not None
    serve = psutil.Process(hive.proc.pid)
    client = hive.client(hive.key("admin"))
    enrol = hive.key("bot")
    fleet = [
        start_bot(hive, enrol, f"soak-{i}", "--capabilities", "noop", "--max-concurrency", "64")
        for i in range(bots)
    ]
    samples: list[tuple[float, int, int]] = []  # (seconds, submitted, rss bytes)
    submitted = 0
    done = threading.Event()

    def sample() -> None:
        began = time.perf_counter()
        while not done.wait(SAMPLE_S):
            samples.append((time.perf_counter() - began, submitted, serve.memory_info().rss))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    try:
        while submitted < tasks:
            n = min(BATCH, tasks - submitted)
            batch = [{"type": "noop", "payload": {"n": submitted + i}} for i in range(n)]
            client.post("/v1/tasks/batch", json={"tasks": batch}).raise_for_status()
            submitted += n
            ahead = began + submitted / rate - time.perf_counter()
            if ahead > 0:
                done.wait(ahead)  # paces the stream to ``rate`` (not a wait for an outcome)
        with psycopg.connect(hive.db_url) as conn:
            wait_for(
                lambda: (
                    (
                        conn.execute(
                            "SELECT count(*) FROM tasks_view WHERE state = 'succeeded'"
                        ).fetchone()
                        or (0,)
                    )[0]
                    >= tasks
                ),
                timeout=600,
                what="the soak's tasks done",
                interval=0.5,
            )
    finally:
        done.set()
        sampler.join()
        for bot in fleet:
            bot.stop()
        client.close()
    return summarize(samples, tasks, time.perf_counter() - began)


def summarize(samples: list[tuple[float, int, int]], tasks: int, took_s: float) -> dict[str, Any]:
    mb = 1024 * 1024
    half = next(i for i, (_, n, _) in enumerate(samples) if n >= tasks / 2)
    start = samples[half][2]
    last = [rss for _, _, rss in samples[half:]]
    spread = max(abs(r - start) for r in last) / start
    return {
        "tasks": tasks,
        "took_s": round(took_s, 1),
        "rss_first_mb": round(samples[0][2] / mb, 1),
        "rss_half_mb": round(start / mb, 1),
        "rss_last_half_min_mb": round(min(last) / mb, 1),
        "rss_last_half_max_mb": round(max(last) / mb, 1),
        "rss_end_mb": round(samples[-1][2] / mb, 1),
        "last_half_spread": round(spread, 3),
        "flat": spread <= 0.10,
        "trace_mb": [
            (round(t), n, round(r / mb)) for t, n, r in samples[:: max(1, len(samples) // 20)]
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.soak", description=__doc__)
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--rate", type=float, default=1_500.0, help="tasks submitted per second")
    args = ap.parse_args()
    return run_alone("soak", lambda hive: soak(hive, args.tasks, args.rate))


if __name__ == "__main__":
    sys.exit(main())
