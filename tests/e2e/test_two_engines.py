"""Two hive processes on one database: one leader per loop, and kill -9 hands it over,
with a schedule firing every second throughout: each tick exactly once, none lost."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from tests.e2e.harness import Hive, start_bot, task
from tests.integration.log_checks import (
    every_second_schedule,
    fired_ticks,
    log_events,
    tick_faults,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

LOOPS = ("dispatcher", "reaper", "scheduler")


def leaders(db_url: str) -> dict[str, list[int]]:
    """Loop -> the OS pids of the processes holding its advisory lock (from the server)."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND a.application_name LIKE 'apiary-lead %%'"
        ).fetchall()
    out: dict[str, list[int]] = {}
    for (name,) in rows:
        _, loop, pid = name.split(" ")
        out.setdefault(loop, []).append(int(pid))
    return out


def ticks_in(db_url: str) -> list[datetime]:
    return fired_ticks(log_events(db_url))


def test_one_leader_per_loop_and_kill_9_hands_the_lead_over(db_url: str, tmp_path: Path) -> None:
    quick = {"APIARY_POLL_INTERVAL_S": "0.2", "APIARY_REAPER_INTERVAL_S": "0.2"}
    first = Hive(db_url=db_url, home=tmp_path / "a", settings=quick).start()
    second = Hive(db_url=db_url, home=tmp_path / "b", settings=quick).start()
    try:
        assert first.proc is not None and second.proc is not None
        pids = {first.proc.pid, second.proc.pid}
        led = wait_for(
            lambda: (ls := leaders(db_url)) and all(loop in ls for loop in LOOPS) and ls,
            timeout=20,
            what="a leader for every loop",
        )
        for loop in LOOPS:
            assert len(led[loop]) == 1 and led[loop][0] in pids, led
        admin = first.client(first.key("admin"))
        created = admin.post(
            "/v1/schedules", json=every_second_schedule("heartbeat", {"type": "noop"})
        )
        assert created.status_code == 201, created.text
        wait_for(lambda: len(ticks_in(db_url)) >= 2, timeout=10, what="two ticks fired")

        doomed_pid = led["scheduler"][0]
        doomed = first if doomed_pid == first.proc.pid else second
        survivor = second if doomed is first else first
        assert survivor.proc is not None

        doomed.kill9()
        took_over = wait_for(
            lambda: (
                (ls := leaders(db_url))
                and all(ls.get(loop) == [survivor.proc.pid] for loop in LOOPS)  # type: ignore[union-attr]
                and ls
            ),
            timeout=5,  # the bots' lease is 5 s: the lead must move within it
            what="the survivor leading every loop",
        )
        assert took_over
        before = len(ticks_in(db_url))
        wait_for(
            lambda: len(ticks_in(db_url)) >= before + 3,
            timeout=10,
            what="ticks fired by the new leader",
        )
        assert tick_faults(ticks_in(db_url), every_s=1) == []

        client = survivor.client(survivor.key("client"))
        bot = start_bot(survivor, survivor.key("bot"), "after", "--capabilities", "noop")
        try:
            created = client.post("/v1/tasks", json={"type": "noop"})
            assert created.status_code == 201, created.text
            wait_for(
                lambda: task(client, created.json()["id"])["state"] == "succeeded",
                timeout=20,
                what="a task dispatched by the new leader",
            )
        finally:
            assert bot.stop() == 0
    finally:
        first.stop()
        second.stop()
