"""Retries survive kill -9 (issue 12, "Crash-proof"): real `apiary serve`, real `--exec`
bots, real PostgreSQL.

- The engine killed while tasks wait out their backoff: the delays are in the log, so the
  restarted engine fires each retry once, at or after its time, and every task succeeds.
- A bot killed mid-attempt: the lost attempt is counted once (one ``RetryScheduled``,
  outcome ``lost``), and the task completes on another bot.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.tasks import Task
from tests.e2e.harness import Hive, start_bot, task
from tests.integration.log_checks import log_events
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

# Exits 75 (EX_TEMPFAIL: a temporary failure, retried) the first time it sees a payload's
# marker, then succeeds.
FLAKY = (
    "import json, os, sys\n"
    "marker = json.load(sys.stdin)['marker']\n"
    "if not os.path.exists(marker):\n"
    "    open(marker, 'w').close()\n"
    "    sys.exit(75)\n"
    "print(json.dumps({'ok': True}))\n"
)
# A task that runs until its bot is gone (whoever adopts it then) or for a minute at most:
# the work itself, looking at its parent five times a second (pacing, not a test's wait).
ENDLESS = (
    "import os, sys, time\n"
    "sys.stdin.read()\n"
    "bot, end = os.getppid(), time.monotonic() + 60\n"
    "while os.getppid() == bot and time.monotonic() < end:\n"
    "    time.sleep(0.2)\n"
)
ECHO = "import sys; print(sys.stdin.read())"
BACKOFF_S = 6.0  # longer than the first attempts, the kill and most of serve's restart
TASKS = 6


def python(source: str) -> str:
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(source)}"


def set_config(admin: httpx.Client, reason: str, **changes: Any) -> None:
    current = admin.get("/v1/config")
    assert current.status_code == 200, current.text
    answer = admin.patch(
        "/v1/config",
        json={"changes": changes, "reason": reason},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert answer.status_code == 200, answer.text


def history(events: list[Any], task_id: str) -> list[Any]:
    return [e for e in events if str(e.originator_id) == task_id]


def reached(client: httpx.Client, task_id: str, *states: str) -> dict[str, Any]:
    """The task, once the view shows it in one of ``states``; before that, nothing."""
    seen = task(client, task_id)
    return seen if seen["state"] in states else {}


def names(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_engine_killed_during_backoffs_fires_each_retry_once_and_in_time(
    make_hive: Callable[..., Hive], tmp_path: Path
) -> None:
    # A long bot lease: the bot, idle while the engine is away, is not lost meanwhile.
    hive = make_hive(APIARY_BOT_LEASE_TTL_S="30").start()
    admin = hive.client(hive.admin_key())
    document = admin.get("/v1/config").json()["document"]
    set_config(
        admin,
        "retries after a long backoff, across a restart",
        retry={
            **document["retry"],
            "types": {"mirror": {"max_attempts": 3, "initial_backoff_s": BACKOFF_S, "jitter": 0.1}},
        },
        breaker={**document["breaker"], "enabled": False},  # every first attempt fails
    )
    bot = start_bot(
        hive,
        hive.key("bot"),
        "flaky",
        "--capabilities",
        "mirror",
        "--max-concurrency",
        str(TASKS),
        "--exec",
        python(FLAKY),
    )
    try:
        wait_for(
            lambda: admin.get("/v1/bots").json()["items"], timeout=30, what="the bot registered"
        )
        made = admin.post(
            "/v1/tasks/batch",
            json={
                "tasks": [
                    {"type": "mirror", "payload": {"marker": str(tmp_path / f"seen-{n}")}}
                    for n in range(TASKS)
                ]
            },
        )
        assert made.status_code == 201, made.text
        ids = [s["task"]["id"] for s in made.json()["items"]]

        def waiting() -> bool:
            items = admin.get("/v1/tasks", params={"type": "mirror"}).json()["items"]
            return len(items) == TASKS and all(t["retry_at"] is not None for t in items)

        wait_for(waiting, timeout=BACKOFF_S / 2, what="every task waiting out its backoff")
        hive.kill9()
        frozen = log_events(hive.db_url)  # nobody writes now: the log as the engine left it
        for task_id in ids:
            mine = history(frozen, task_id)
            assert isinstance(mine[-1], Task.RetryScheduled), names(mine)

        hive.start()
        ready = datetime.now(UTC)  # the restarted engine is up: retries still to come
        admin = hive.client(hive.admin_key())
        wait_for(
            lambda: {task(admin, i)["state"] for i in ids} == {"succeeded"},
            timeout=30,
            what="every task succeeded after the restart",
        )
    finally:
        assert bot.stop() == 0
    events = log_events(hive.db_url)
    due = [e.not_before for e in events if isinstance(e, Task.RetryScheduled)]
    assert max(due) > ready, "the restart outlasted every backoff: no retry was left to wait"
    for task_id in ids:
        mine = history(events, task_id)
        [retry] = [e for e in mine if isinstance(e, Task.RetryScheduled)]
        assert (retry.attempt, retry.outcome, retry.error_kind) == (1, "failed", "temporary")
        after = mine[mine.index(retry) + 1 :]
        assert names(after) in (
            ["Assigned", "Started", "Succeeded"],
            ["Assigned", "Succeeded"],  # run at once: its finish says how long it ran
        ), names(mine)
        assert after[0].timestamp >= retry.not_before, (task_id, after[0].timestamp, retry)
        assert names(mine).count("Assigned") == 2, names(mine)
    assert task(admin, ids[0])["attempt"] == 2


def test_bot_killed_mid_attempt_counts_the_attempt_once(
    make_hive: Callable[..., Hive],
) -> None:
    hive = make_hive(APIARY_BOT_LEASE_TTL_S="2", APIARY_HEARTBEAT_INTERVAL_S="0.5").start()
    client = hive.client(hive.key("client"))
    enrol = hive.key("bot")
    doomed = start_bot(hive, enrol, "doomed", "--capabilities", "mirror", "--exec", python(ENDLESS))
    rescuer = None
    try:
        made = client.post("/v1/tasks", json={"type": "mirror", "payload": {"n": 1}})
        assert made.status_code == 201, made.text
        task_id = made.json()["id"]
        running = wait_for(
            lambda: reached(client, task_id, "running"),
            timeout=30,
            what="the task started on the doomed bot",
        )
        doomed.kill9()
        rescuer = start_bot(
            hive, enrol, "rescuer", "--capabilities", "mirror", "--exec", python(ECHO)
        )
        done = wait_for(
            lambda: reached(client, task_id, "succeeded", "failed", "dead"),
            timeout=30,
            what="the task finished on the rescuer",
        )
    finally:
        if rescuer is not None:
            assert rescuer.stop() == 0
        if doomed.proc.poll() is None:  # the test failed before the kill
            doomed.kill9()
    assert (done["state"], done["result"], done["attempt"]) == ("succeeded", {"n": 1}, 2)
    assert done["bot_id"] != running["bot_id"]
    mine = history(log_events(hive.db_url), task_id)
    ended = [e for e in mine if isinstance(e, Task.RetryScheduled | Task.DeadLettered)]
    assert [(type(e).__name__, e.attempt, e.outcome) for e in ended] == [
        ("RetryScheduled", 1, "lost")
    ], names(mine)
    assert str(ended[0].bot_id) == running["bot_id"]
    assert "LeaseExpired" not in names(mine), names(mine)  # lost after its start: an attempt
    assert names(mine).count("Assigned") == names(mine).count("Started") == 2, names(mine)
