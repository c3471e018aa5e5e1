"""What the hive's watching of itself costs a drain (issue 13, "Speed and cost"): the drain
of "End to end" with the profiler's timings and the incident detector on (the defaults)
and off (`profiling: false`, `incidents.enabled: false`, set through `PATCH /v1/config`),
in alternating rounds, each drain with a fresh database and an `apiary serve` of its own,
so the two sides share the machine's moods.

What "off" leaves on, by design: the stages view's per-minute windows and the overhead
stage (a view is the log's replay and cannot depend on a knob); the detector's model still
notes each unfinished task's type (a dict set and pop per task), so that a failure the
moment it is turned back on has its type; its rules stop. The A/B of the commits before
and after issue 13 (`python -m tests.bench.ab`) measures all of it together.

Run alone: ``python -m tests.bench.watching --tasks 10000 --rounds 3``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from api.bootstrap import migrate
from store.database import database_url
from tests.bench.drain import drain
from tests.e2e.harness import REPO, Hive
from tests.pg import fresh_database


def watching_drains(
    server: str, home: Path, tasks: int, bots: int, concurrency: int, rounds: int
) -> dict[str, Any]:
    """``rounds`` pairs of drains, on then off (the order alternates each round)."""
    on: list[dict[str, Any]] = []
    off: list[dict[str, Any]] = []
    for n in range(rounds):
        for watched in (True, False) if n % 2 == 0 else (False, True):
            side = on if watched else off
            side.append(
                one_drain(server, home / f"{n}-{watched}", tasks, bots, concurrency, watched)
            )
            print(
                {"round": n, "watched": watched, "per_s": round(side[-1]["per_s_span"])}, flush=True
            )
    ratios = [a["per_s_span"] / b["per_s_span"] for a, b in zip(on, off, strict=True)]
    return {
        "tasks": tasks,
        "bots": bots,
        "concurrency": concurrency,
        "on": [d["per_s_span"] for d in on],
        "off": [d["per_s_span"] for d in off],
        "ratios": ratios,
        "ratio": statistics.median(ratios),
    }


def one_drain(
    server: str, home: Path, tasks: int, bots: int, concurrency: int, watched: bool
) -> dict[str, Any]:
    with fresh_database(server, "apiary_bench_watching") as url:
        migrate(url)
        hive = Hive(db_url=url, home=home, settings={"APIARY_LOG_LEVEL": "WARNING"}).start()
        try:
            with hive.client(hive.key("admin")) as admin:
                watch(admin, watched)
                measured = drain(hive, admin, hive.key("bot"), tasks, bots, concurrency)
            for bot in measured.pop("fleet"):
                bot.stop()
        finally:
            hive.stop()
        return measured


def watch(admin: httpx.Client, on: bool) -> None:
    current = admin.get("/v1/config")
    current.raise_for_status()
    document = current.json()["document"]
    changes = {"profiling": on, "incidents": {**document["incidents"], "enabled": on}}
    admin.patch(
        "/v1/config",
        json={"changes": changes, "reason": f"bench: the hive's watching {'on' if on else 'off'}"},
        headers={"If-Match": current.headers["ETag"]},
    ).raise_for_status()


def watching_section(w: dict[str, Any]) -> str:
    """The section of docs/benchmarks.md."""
    rows = "\n".join(
        f"| {n + 1} | {a:,.0f} | {b:,.0f} | {r:.2f} |"
        for n, (a, b, r) in enumerate(zip(w["on"], w["off"], w["ratios"], strict=True))
    )
    return f"""## What watching itself costs a drain

The drain of "End to end" ({w["tasks"]:,} no-op tasks, {w["bots"]} bot processes of
{w["concurrency"]} slots) with the profiler's timings and the incident detector on (the
defaults) and off (`profiling: false`, `incidents.enabled: false`), in alternating
rounds, each with a fresh database and an `apiary serve` of its own
(`python -m tests.bench.watching`; see its docstring for what "off" leaves on). Tasks a
second from the first assignment to the last completion:

| round | on | off | on / off |
|---|---|---|---|
{rows}

Median on / off: {w["ratio"]:.2f}.
"""


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.watching", description=__doc__)
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--bots", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=256, help="max concurrency per bot")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="apiary-bench-watching-"))
    try:
        with database_url(os.environ, (REPO / ".apiary").resolve()) as server:
            w = watching_drains(server, home, args.tasks, args.bots, args.concurrency, args.rounds)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(watching_section(w))
    return 0


if __name__ == "__main__":
    sys.exit(main())
