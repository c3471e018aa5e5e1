"""The retry drain beside the plain one (issue 12, "Speed"): does the retry path cost the
tasks that never fail?

Two drains of the same no-op tasks (``tests.bench.drain``), one after the other, each in
a fresh database with an `apiary serve` of its own, the same retry policy (a 0.01 s
backoff, set through `PATCH /v1/config`) and the circuit breaker off: the plain one by
`apiary bot` processes, the retry one by ``tests.bench.flaky_bot`` processes, which fail
the first attempt of one task in ten (a temporary failure: retried). Both report the
throughput of all their tasks and of the nine in ten that never fail, timed the same way
(first assignment to last completion, from the tasks view); the log counts the retries.

Run alone: ``python -m tests.bench.retry_drain --tasks 3000``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from api.bootstrap import migrate
from store.database import database_url
from tests.bench.drain import Launch, drain
from tests.bench.flaky_bot import FAIL_EVERY, start_flaky_bot
from tests.e2e.harness import REPO, Hive, start_bot
from tests.pg import fresh_database

POLICY = {"max_attempts": 3, "initial_backoff_s": 0.01, "max_backoff_s": 1.0, "jitter": 0.1}


def retry_drains(
    server: str, home: Path, tasks: int, bots: int, concurrency: int
) -> dict[str, Any]:
    """The plain drain, then the retry drain, on the PostgreSQL server at ``server``."""
    plain = one_drain(server, home / "plain", start_bot, tasks, bots, concurrency)
    retried = one_drain(server, home / "retry", start_flaky_bot, tasks, bots, concurrency)
    return {"plain": plain, "retry": retried, "bots": bots, "concurrency": concurrency}


def one_drain(
    server: str, home: Path, launch: Launch, tasks: int, bots: int, concurrency: int
) -> dict[str, Any]:
    with fresh_database(server, "apiary_bench_retry") as url:
        migrate(url)
        hive = Hive(db_url=url, home=home, settings={"APIARY_LOG_LEVEL": "WARNING"}).start()
        try:
            with hive.client(hive.key("admin")) as admin:
                set_retry_policy(admin)
                measured = drain(hive, admin, hive.key("bot"), tasks, bots, concurrency, launch)
            for bot in measured.pop("fleet"):
                bot.stop()
        finally:
            hive.stop()
        return {**measured, **never_failing(url), **counted(url)}


def set_retry_policy(admin: httpx.Client) -> None:
    """The drains' policy for the no-op type, and no circuit breaker: with its defaults it
    may quarantine a flaky bot (five failures in a row), and a drain short of a bot
    measures the breaker, not the retry path."""
    current = admin.get("/v1/config")
    current.raise_for_status()
    document = current.json()["document"]
    changes = {
        "retry": {**document["retry"], "types": {"noop": POLICY}},
        "breaker": {**document["breaker"], "enabled": False},
    }
    admin.patch(
        "/v1/config",
        json={"changes": changes, "reason": "bench: retries after a tiny backoff"},
        headers={"If-Match": current.headers["ETag"]},
    ).raise_for_status()


def never_failing(url: str) -> dict[str, Any]:
    """The tasks the flaky bot never fails (as chosen by ``flaky_bot.fails_first``): how
    many, and their rate from their first assignment to their last completion."""
    with psycopg.connect(url) as conn:
        count, span = conn.execute(
            "SELECT count(*), extract(epoch FROM max(finished_at) - min(assigned_at)) "
            "FROM tasks_view WHERE type = 'noop' AND (payload->>'n')::int %% %s <> 0",
            (FAIL_EVERY,),
        ).fetchone()  # type: ignore[misc]
    return {"steady": count, "steady_span_s": float(span), "steady_per_s": count / float(span)}


def counted(url: str) -> dict[str, int]:
    """From the log: attempts retried, tasks dead-lettered, bots quarantined."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT topic, count(*) FROM hive_events WHERE topic IN "
            "('domain.tasks:Task.RetryScheduled', 'domain.tasks:Task.DeadLettered', "
            "'domain.bots:Bot.Quarantined') GROUP BY topic"
        ).fetchall()
    seen = {topic.rsplit(".", 1)[-1]: n for topic, n in rows}
    return {
        "retries": seen.get("RetryScheduled", 0),
        "dead_letters": seen.get("DeadLettered", 0),
        "quarantines": seen.get("Quarantined", 0),
    }


def retry_drain_section(r: dict[str, Any]) -> str:
    """The section of docs/benchmarks.md."""
    plain, retry = r["plain"], r["retry"]

    def row(what: str, show: Callable[[dict[str, Any]], str]) -> str:
        return f"| {what} | {show(plain)} | {show(retry)} |"

    rows = "\n".join(
        [
            row("all tasks", lambda d: f"{d['per_s_span']:,.0f} tasks/s ({d['span_s']:.2f} s)"),
            row(
                f"the {plain['steady']:,} tasks that never fail",
                lambda d: f"{d['steady_per_s']:,.0f} tasks/s ({d['steady_span_s']:.2f} s)",
            ),
            row(
                "retries scheduled / dead letters / bots quarantined (in the log)",
                lambda d: f"{d['retries']} / {d['dead_letters']} / {d['quarantines']}",
            ),
        ]
    )
    ratio = retry["steady_per_s"] / plain["steady_per_s"]
    return f"""## Retries in a drain

The drain of "End to end" twice, one after the other: {plain["tasks"]:,} no-op tasks and
{r["bots"]} bot processes of {r["concurrency"]} slots, each drain with a fresh database and
an `apiary serve` of its own, the circuit breaker off, and this retry policy for the
tasks' type: `{json.dumps(POLICY)}`. First plain (`apiary bot`), then with the first
attempt of one task in {FAIL_EVERY} failing (`tests/bench/flaky_bot.py`: a temporary
failure, so retried; the task chosen by its payload). Each rate runs from the first
assignment to the last completion of the tasks it counts.

| measured | plain drain | retry drain |
|---|---|---|
{rows}

The tasks that never fail, retry drain / plain drain: {ratio:.0%}.
"""


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.retry_drain", description=__doc__)
    ap.add_argument("--tasks", type=int, default=3_000)
    ap.add_argument("--bots", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=256, help="max concurrency per bot")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="apiary-bench-retry-"))
    try:
        with database_url(os.environ, (REPO / ".apiary").resolve()) as server:
            r = retry_drains(server, home, args.tasks, args.bots, args.concurrency)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(r, flush=True)
    print(retry_drain_section(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
