"""The hive survives kill -9 of any process: real server, real bots, real PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import psycopg

from tests.e2e.harness import Hive, start_bot, task
from tests.waiting import wait_for

pytestmark = __import__("pytest").mark.e2e


def test_submitted_task_is_done_by_a_real_bot(hive: Hive) -> None:
    hive.start()
    client = hive.client(hive.key("client"))
    bot = start_bot(hive, hive.key("bot"), "coder", "--capabilities", "code")
    try:
        source = "def f(x):\n    if x:\n        return 1\n    return 2\n"
        created = client.post("/v1/tasks", json={"type": "code", "payload": {"source": source}})
        assert created.status_code == 201, created.text
        done = wait_for(
            lambda: (t := task(client, created.json()["id"]))["state"] == "succeeded" and t,
            timeout=20,
            what="the code task to succeed",
        )
        assert done["result"]["functions"] == 1 or "f" in str(done["result"])
        assert done["assignment"]["policy"]
    finally:
        assert bot.stop() == 0


def test_kill_9_server_under_concurrent_submitters_loses_no_acknowledged_task(hive: Hive) -> None:
    hive.start()
    token = hive.key("client")
    acknowledged: set[str] = set()
    attempted: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def submitter(n: int) -> None:
        with httpx.Client(
            base_url=hive.url, headers={"Authorization": f"Bearer {token}"}, timeout=5
        ) as c:
            i = 0
            while not stop.is_set():
                marker = f"s{n}-{i}"
                i += 1
                with lock:
                    attempted.add(marker)
                try:
                    r = c.post("/v1/tasks", json={"type": "noop", "payload": {"m": marker}})
                except httpx.HTTPError:
                    continue
                if 200 <= r.status_code < 300:
                    with lock:
                        acknowledged.add(r.json()["id"])

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acknowledged) >= 200, timeout=30, what="200 acknowledged submissions")
    hive.kill9()
    wait_for(lambda: len(attempted) > len(acknowledged), timeout=10, what="failed attempts")
    stop.set()
    for t in threads:
        t.join(timeout=30)

    hive.start()
    client = hive.client(token)
    bot = start_bot(
        hive, hive.key("bot"), "noop", "--capabilities", "noop", "--max-concurrency", "64"
    )
    try:
        with psycopg.connect(hive.db_url) as conn:

            def all_done() -> bool:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE state <> 'succeeded'), count(*) FROM tasks_view"
                ).fetchone()
                return row is not None and row[0] == 0 and row[1] >= len(acknowledged)

            wait_for(all_done, timeout=60, what="every task to complete after restart")
            rows = conn.execute("SELECT task_id::text, payload->>'m' FROM tasks_view").fetchall()
        stored = {tid for tid, _ in rows}
        assert acknowledged <= stored, "an acknowledged submission was lost"
        assert {m for _, m in rows} <= attempted, "a task exists that no client submitted"
        assert task(client, next(iter(acknowledged)))["state"] == "succeeded"
    finally:
        bot.stop()


def test_kill_9_bot_holding_a_task_runs_it_elsewhere(hive: Hive) -> None:
    hive.start()
    client = hive.client(hive.key("client"))
    enrol = hive.key("bot")
    stuck = start_bot(
        hive,
        enrol,
        "stuck",
        "--capabilities",
        "writing",
        "--exec",
        "python3 -c 'import sys, threading; sys.stdin.read(); threading.Event().wait(120)'",
    )
    task_id = client.post(
        "/v1/tasks",
        json={
            "type": "writing",
            "payload": {"text": "hello there. general kenobi.", "style": "upper"},
        },
    ).json()["id"]
    running = wait_for(
        lambda: (t := task(client, task_id))["state"] == "running" and t,
        timeout=20,
        what="the task to run on the doomed bot",
    )
    doomed = running["bot_id"]
    stuck.kill9()
    killed_at = time.monotonic()
    rescuer = start_bot(hive, enrol, "rescuer", "--capabilities", "writing")
    try:
        done = wait_for(
            lambda: (t := task(client, task_id))["state"] == "succeeded" and t,
            timeout=30,
            what="the task to succeed on another bot",
        )
        elapsed = time.monotonic() - killed_at
        assert done["bot_id"] != doomed
        assert done["fencing_token"] == 2
        assert done["result"]["text"] == "HELLO THERE. GENERAL KENOBI."
        assert elapsed < 15, f"rerun took {elapsed:.1f}s"
        assert client.get(f"/v1/bots/{doomed}").json()["state"] == "lost"
    finally:
        rescuer.stop()


def test_late_report_from_a_lost_bot_is_refused_and_changes_nothing(hive: Hive) -> None:
    hive.settings = {"APIARY_BOT_LEASE_TTL_S": "1.5"}
    hive.start()
    client = hive.client(hive.key("client"))
    enrol = hive.client(hive.key("bot"))
    reg = enrol.post(
        "/v1/bots",
        json={"name": "silent", "capabilities": ["code"], "max_concurrency": 1, "version": "t"},
    ).json()
    me = hive.client(reg["token"])
    bot = f"/v1/bots/{reg['bot_id']}"
    task_id = client.post("/v1/tasks", json={"type": "code"}).json()["id"]
    claimed = me.post(f"{bot}/claim", json={"max_tasks": 1, "wait_s": 10}).json()["tasks"]
    assert [c["id"] for c in claimed] == [task_id]
    token = claimed[0]["fencing_token"]
    assert (
        me.post(
            f"{bot}/start", json={"tasks": [{"task_id": task_id, "fencing_token": token}]}
        ).status_code
        == 200
    )
    wait_for(  # pending again after its lease expired (token 1), not the view lagging at 0
        lambda: (t := task(client, task_id))["state"] == "pending" and t["fencing_token"] == 1,
        timeout=15,
        what="the silent bot's task to return to pending",
    )
    before: dict[str, Any] = task(client, task_id)
    late = me.post(
        f"{bot}/complete",
        json={"tasks": [{"task_id": task_id, "fencing_token": token, "result": {"late": True}}]},
    )
    assert late.status_code == 409, late.text
    assert late.headers["content-type"].startswith("application/problem+json")
    assert me.post(f"{bot}/heartbeat", json={}).status_code == 409
    after = task(client, task_id)
    assert after["state"] in ("pending", "assigned") and after["result"] is None
    assert after["position"] >= before["position"]
