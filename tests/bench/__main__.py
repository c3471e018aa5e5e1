"""`make bench`: the event store's limits and the hive's end-to-end speed, in one run.

Writes docs/benchmarks.md, keeping its peers section, then runs `python -m tests.bench.peers`
(Apiary beside PgQueuer, Oban and Celery), which rewrites that section; `--no-peers` skips
it. Not part of `make test`. Uses APIARY_DATABASE_URL's server when set, else the embedded
PostgreSQL; each run works in a database of its own.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from api.bootstrap import migrate, open_hive
from api.settings import Settings
from domain.cause import Cause
from domain.hive import TaskSpec
from store.database import database_url
from tests.bench.big_log import big_log_section, measure_big_log
from tests.bench.config_propagation import config_propagation
from tests.bench.dashboard import bench_dashboard
from tests.bench.dashboard_stream import push_latency
from tests.bench.drain import drain
from tests.bench.incidents import bench_incidents, incidents_section
from tests.bench.messaging import message_latency
from tests.bench.peers import section
from tests.bench.pg import pgbench_insert_tps
from tests.bench.retry_drain import retry_drain_section, retry_drains
from tests.bench.scaling import bench_scaling
from tests.bench.soak import soak
from tests.bench.stats import summary_ms
from tests.bench.watching import watching_drains, watching_section
from tests.e2e.harness import Hive, start_bot, task
from tests.pg import create_database, drop_database, fresh_database, unique_database_name
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
CAUSE = Cause("bench", "bench")


def append_rate(url: str, per_save: int, events: int) -> float:
    hive = open_hive(url, Settings())
    try:
        started = time.perf_counter()
        for _ in range(events // per_save):
            hive.tasks.submit([TaskSpec("bench", payload="{}")] * per_save, CAUSE)
        return events / (time.perf_counter() - started)
    finally:
        hive.close()


def idle_latency(hive: Hive, client: httpx.Client, count: int) -> dict[str, Any]:
    """One task at a time into an idle fleet. Completion is watched in the database, not
    through the API, so that watching adds no load to the server being measured."""
    ids = []
    with psycopg.connect(hive.db_url, autocommit=True) as conn:
        for i in range(count):
            task_id = client.post("/v1/tasks", json={"type": "noop", "payload": {"i": i}})
            ids.append(task_id.json()["id"])
            wait_for(
                lambda t=ids[-1]: conn.execute(
                    "SELECT 1 FROM tasks_view WHERE task_id = %s AND state = 'succeeded'", (t,)
                ).fetchone(),
                timeout=30,
                what="an idle-fleet task",
                interval=0.01,
            )
        rows = conn.execute(
            "SELECT extract(epoch FROM started_at - submitted_at), "
            "extract(epoch FROM finished_at - submitted_at) FROM tasks_view "
            "WHERE task_id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
    return {
        "start": summary_ms([float(r[0]) for r in rows]),
        "done": summary_ms([float(r[1]) for r in rows]),
        "count": len(rows),
    }


def rerun_after_kill(hive: Hive, client: httpx.Client, enrol: str) -> float:
    """The task runs on a bot that never finishes it; a standby joins; kill -9 the first."""
    doomed = start_bot(
        hive,
        enrol,
        "doomed",
        "--capabilities",
        "writing",
        "--max-concurrency",
        "8",
        "--exec",
        f"{sys.executable} -c 'import sys, threading; sys.stdin.read(); threading.Event().wait(120)'",
    )
    standby = None
    try:
        task_id = client.post(
            "/v1/tasks", json={"type": "writing", "payload": {"text": "a b c.", "style": "upper"}}
        ).json()["id"]
        wait_for(
            lambda: task(client, task_id)["state"] == "running",
            timeout=30,
            what="the task running on the doomed bot",
        )
        standby = start_bot(
            hive, enrol, "standby", "--capabilities", "writing", "--max-concurrency", "1"
        )
        wait_for(
            lambda: any(
                b["state"] == "ready" and b["name"] == "standby"
                for b in client.get("/v1/bots").json()["items"]
            ),
            timeout=30,
            what="the standby bot",
        )
        killed = datetime.now(UTC)
        doomed.kill9()
        wait_for(
            lambda: (
                (t := task(client, task_id)).get("fencing_token") == 2
                and t["started_at"] is not None
            ),
            timeout=60,
            what="the task restarted elsewhere",
            interval=0.05,
        )
        restarted = datetime.fromisoformat(task(client, task_id)["started_at"])
        return (restarted - killed).total_seconds()
    finally:
        if standby is not None:
            standby.stop()
        if doomed.proc.poll() is None:  # the run failed before the kill
            doomed.kill9()


@contextmanager
def migrated_database(server: str, name: str) -> Iterator[str]:
    """A fresh database of its own for one measurement, migrated; dropped afterwards."""
    with fresh_database(server, f"apiary_bench_{name}") as url:
        migrate(url)
        yield url


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    system = f"{platform.system()} {platform.release()}"
    py = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {system}, Python {py}"


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--bots", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=256, help="max concurrency per bot")
    ap.add_argument(
        "--retry-drain-tasks", type=int, default=20_000, help="tasks of each drain, plain and retry"
    )
    ap.add_argument("--latency-samples", type=int, default=500)
    ap.add_argument("--scaling-trials", type=int, default=5)
    ap.add_argument("--dashboard-tasks", type=int, default=1_000_000)
    ap.add_argument("--push-samples", type=int, default=50)
    ap.add_argument("--config-changes", type=int, default=20)
    ap.add_argument("--incident-trials", type=int, default=5)
    ap.add_argument("--watching-tasks", type=int, default=10_000)
    ap.add_argument("--watching-rounds", type=int, default=3)
    ap.add_argument("--soak-tasks", type=int, default=200_000)
    ap.add_argument("--soak-rate", type=float, default=800.0, help="tasks/s into the soak")
    ap.add_argument("--big-log-events", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--no-peers", action="store_true", help="skip `python -m tests.bench.peers`")
    args = ap.parse_args()
    with database_url(os.environ, (REPO / ".apiary").resolve()) as server:
        name = unique_database_name("apiary_bench")
        url = create_database(server, name)
        home = Path(tempfile.mkdtemp(prefix="apiary-bench-"))
        try:
            migrate(url)
            with psycopg.connect(url) as conn:
                pg_version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            print("raw INSERT ...", flush=True)
            raw1 = pgbench_insert_tps(url, 1, 10)
            raw4 = pgbench_insert_tps(url, 4, 10)
            print("log append ...", flush=True)
            app1 = append_rate(url, 1, 2_000)
            app100 = append_rate(url, 100, 20_000)
            hive = Hive(db_url=url, home=home, settings={"APIARY_LOG_LEVEL": "WARNING"}).start()
            try:
                admin = hive.key("admin")
                client = hive.client(admin)
                enrol = hive.key("bot")
                print("drain ...", flush=True)
                d = drain(hive, client, enrol, args.tasks, args.bots, args.concurrency)
                print({k: v for k, v in d.items() if k != "fleet"}, flush=True)
                print("idle latency ...", flush=True)
                lat = idle_latency(hive, client, args.latency_samples)
                print(lat, flush=True)
                print("message latency ...", flush=True)
                msg = message_latency(hive, client, enrol, args.latency_samples)
                print(msg, flush=True)
                print("dashboard stream ...", flush=True)
                push = push_latency(hive, client, admin, args.push_samples)
                print(push, flush=True)
                for bot in d.pop("fleet"):
                    bot.stop()
                print("kill -9 a bot ...", flush=True)
                rerun = rerun_after_kill(hive, client, enrol)
            finally:
                hive.stop()
            print("retry drain beside a plain one ...", flush=True)
            rd = retry_drains(
                server, home / "retry", args.retry_drain_tasks, args.bots, args.concurrency
            )
            print(rd, flush=True)
            print("the hive's watching on and off ...", flush=True)
            watched = watching_drains(
                server,
                home / "watching",
                args.watching_tasks,
                args.bots,
                args.concurrency,
                args.watching_rounds,
            )
            print(watched, flush=True)
            print("scaling ...", flush=True)
            with migrated_database(server, "scaling") as scaling_url:
                sc = bench_scaling(scaling_url, home / "scaling", args.scaling_trials)
            print(sc, flush=True)
            print("config propagation ...", flush=True)
            with migrated_database(server, "config") as cfg_url:
                cfg = config_propagation(cfg_url, home / "config", args.config_changes)
            print(cfg, flush=True)
            print("incidents ...", flush=True)
            with migrated_database(server, "incidents") as inc_url:
                inc = bench_incidents(inc_url, home / "incidents", args.incident_trials)
            print(inc, flush=True)
            print("soak ...", flush=True)
            with migrated_database(server, "soak") as soak_url:
                soaked = Hive(
                    db_url=soak_url, home=home / "soak", settings={"APIARY_LOG_LEVEL": "WARNING"}
                ).start()
                try:
                    memory = soak(soaked, args.soak_tasks, args.soak_rate)
                finally:
                    soaked.stop()
            print({k: v for k, v in memory.items() if k != "trace_mb"}, flush=True)
            print("dashboard ...", flush=True)
            with migrated_database(server, "dashboard") as dash_url:
                dash = bench_dashboard(dash_url, home / "dashboard", args.dashboard_tasks, 20)
            print(dash, flush=True)
            print("big log ...", flush=True)
            with migrated_database(server, "biglog") as big_url:
                big = measure_big_log(big_url, args.big_log_events)
            print({k: v for k, v in big.items() if k != "mix"}, flush=True)
        finally:
            drop_database(server, name)
            shutil.rmtree(home, ignore_errors=True)
    report = render(
        machine(),
        pg_version,
        raw1,
        raw4,
        app1,
        app100,
        d,
        lat,
        msg,
        rerun,
        rd,
        watched,
        sc,
        dash,
        push,
        cfg,
        inc,
        memory,
        big,
        args,
    )
    kept = section.existing(args.out.read_text()) if args.out.exists() else None
    args.out.write_text(report if kept is None else section.replace(report, kept))
    print(report)
    if args.no_peers:
        return 0
    peers = [sys.executable, "-m", "tests.bench.peers", "--out", str(args.out)]
    return subprocess.run(peers, cwd=REPO, check=False).returncode


def render(
    machine: str,
    pg: str,
    raw1: float,
    raw4: float,
    app1: float,
    app100: float,
    d: dict[str, Any],
    lat: dict[str, Any],
    msg: dict[str, Any],
    rerun: float,
    rd: dict[str, Any],
    watched: dict[str, Any],
    sc: dict[str, Any],
    dash: dict[str, Any],
    push: dict[str, Any],
    cfg: dict[str, Any],
    inc: dict[str, Any],
    memory: dict[str, Any],
    big: dict[str, Any],
    args: argparse.Namespace,
) -> str:
    pages = "\n".join(
        f"| {name} | {dash[name]['first']} ms | {dash[name]['p50']} / {dash[name]['p95']} ms | <= 300 ms |"
        for name in dash["pages"]
    )
    pool = sc["pool"]
    return f"""# Benchmarks

Produced by `make bench` (`python -m tests.bench --tasks {args.tasks} --bots {args.bots}
--concurrency {args.concurrency} --retry-drain-tasks {args.retry_drain_tasks}
--latency-samples {args.latency_samples}
--scaling-trials {args.scaling_trials} --dashboard-tasks {args.dashboard_tasks}
--push-samples {args.push_samples} --config-changes {args.config_changes}
--incident-trials {args.incident_trials} --watching-tasks {args.watching_tasks}
--watching-rounds {args.watching_rounds}
--soak-tasks {args.soak_tasks} --soak-rate {args.soak_rate:g}
--big-log-events {args.big_log_events}`) on
{datetime.now(UTC):%Y-%m-%d}. Machine: {machine}; PostgreSQL {pg}. The hive ran as one
`apiary serve` process; bots were separate `apiary bot` processes on the same machine.
Shared, noisy machines: compare ratios within one run, not absolute numbers across runs.

## The event store

| measured | figure |
|---|---|
| raw single-row INSERT (pgbench), 1 / 4 clients | {raw1:,.0f} / {raw4:,.0f} tx/s |
| log append through the Hive (hash chain on), 1 event per save | {app1:,.0f} events/s |
| log append through the Hive, 100 events per save | {app100:,.0f} events/s |

## End to end over HTTP

| measured | figure | floor |
|---|---|---|
| drain: {d["tasks"]:,} no-op tasks, {args.bots} bot processes (first assignment to last completion) | {d["per_s_span"]:,.0f} tasks/s ({d["span_s"]:.2f} s) | >= 2,000 |
| same, wall clock from launching the bots | {d["per_s_wall"]:,.0f} tasks/s ({d["wall_s"]:.2f} s) | |
| launching the bots -> the first assignment | {d["startup_s"]:.2f} s | <= 1 s |
| the last completion -> the views of tasks (tasks, stages, performance) have applied it | {d["views_lag_s"]:.2f} s | <= 1 s |
| submit -> start, idle bots, p50 / p95 / p99 ({lat["count"]} tasks, one at a time) | {lat["start"]["p50"]} / {lat["start"]["p95"]} / {lat["start"]["p99"]} ms | p50 <= 10, p99 <= 30 |
| submit -> done, idle bots, p50 / p95 / p99 | {lat["done"]["p50"]} / {lat["done"]["p95"]} / {lat["done"]["p99"]} ms | |
| message send -> delivered, idle recipient long-polling, p50 / p95 / p99 ({msg["count"]} messages, one at a time) | {msg["delivered"]["p50"]} / {msg["delivered"]["p95"]} / {msg["delivered"]["p99"]} ms | p50 <= 10 |
| message send -> acknowledged, p50 / p95 / p99 | {msg["acked"]["p50"]} / {msg["acked"]["p95"]} / {msg["acked"]["p99"]} ms | |
| kill -9 a bot holding a task -> the task starts on another bot (defaults: 5 s lease) | {rerun:.2f} s | <= 10 s |

Latencies are differences of event timestamps recorded by the server (one clock).

{retry_drain_section(rd)}
{watching_section(watched)}
## Auto-scaling

A pool `{pool["name"]}` (capabilities {pool["capabilities"]}, {pool["min_bots"]}..{pool["max_bots"]} bots of {pool["max_concurrency"]} slots, up cooldown {pool["up_cooldown_s"]} s, down cooldown {pool["down_cooldown_s"]} s, scaler pace 0.2 s), {sc["trials"]} trials: a burst of 50 tasks into the empty pool, then idle.

| measured | p50 / p95 / p99 | worst | floor |
|---|---|---|---|
| trigger: first task of the burst submitted -> a launched `apiary bot` process has registered | {sc["trigger"]["p50"]} / {sc["trigger"]["p95"]} / {sc["trigger"]["p99"]} ms | {sc["trigger_max_s"]:.2f} s | <= 3 s |
| back to the minimum: last task done -> the pool has no live bot (includes the down cooldown) | {sc["return"]["p50"]} / {sc["return"]["p95"]} / {sc["return"]["p99"]} ms | {sc["return_max_s"]:.2f} s | returns |

## Dashboard

{dash["tasks_in_view"]:,} tasks in the tasks view (filled directly), a real `apiary serve`; a page load is its HTML plus its data request over HTTP, signed in ({dash["rounds"]} loads per page); the scrape is one `GET /metrics`. No schedules or messages are filled: those pages read bounded queries (a schedule's latest 100 runs, the `message_counts` table) and are listed for their fixed cost.

| page | first load | p50 / p95 | floor |
|---|---|---|---|
{pages}

Live push, measured on the hive of "End to end" after its latency runs (its bots idle):
a task submitted one at a time, from `POST /v1/tasks` returning to a signed-in
`/dashboard/stream` delivering the `views` event whose `tasks` position has reached the
task's (the page re-fetches on that event), on the client's clock ({push["count"]} tasks).

| measured | p50 / p95 / max | floor |
|---|---|---|
| submit -> SSE push | {push["p50"]} / {push["p95"]} / {push["max"]} ms | <= 1,000 ms |

## The runtime configuration

Two `apiary serve --role api` processes, one `--role engine`, four `apiary bot` processes
(two on each API process); {cfg["changes"]} changes (`PATCH /v1/config`), each timed from its
answer until every process's liveness row and every bot's lease say the new version
(watched in the database).

| measured | p50 / p95 / p99 | max | floor |
|---|---|---|---|
| config change -> every process and bot reports it | {cfg["p50"]} / {cfg["p95"]} / {cfg["p99"]} ms | {cfg["max_ms"]} ms | <= 1,000 ms |

{incidents_section(inc)}
## Memory

`apiary serve` (one process) with 4 bots, {memory["tasks"]:,} no-op tasks submitted at
{args.soak_rate:g} tasks/s in batches of 500 ({memory["took_s"]} s); serve's resident set
size sampled every second. Default budgets: aggregate cache 64 MB, decoded events 32 MB.

| measured | figure | floor |
|---|---|---|
| serve's RSS: first sample / at half the tasks / end | {memory["rss_first_mb"]} / {memory["rss_half_mb"]} / {memory["rss_end_mb"]} MB | |
| serve's RSS over the last half: min / max | {memory["rss_last_half_min_mb"]} / {memory["rss_last_half_max_mb"]} MB | |
| the last half's largest distance from its start | {memory["last_half_spread"]:.1%} | <= 10% |

RSS over the run (seconds, tasks submitted, MB): {", ".join(f"{t}s {n:,} {r}" for t, n, r in memory["trace_mb"])}.

{big_log_section(big)}"""


if __name__ == "__main__":
    sys.exit(main())
