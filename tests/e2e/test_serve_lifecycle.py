"""`apiary serve --demo-bots N`: bots come up with it, do work, and go down with it (killed
with -9 too: tests/e2e/test_orphans.py)."""

from __future__ import annotations

import psutil
import psycopg
import pytest

from tests.e2e.harness import Hive, task
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


def demo_bots(hive: Hive) -> list[psutil.Process]:
    assert hive.proc is not None
    return [
        p
        for p in psutil.Process(hive.proc.pid).children(recursive=True)
        if "--capabilities" in p.cmdline()
    ]


def test_sigterm_drains_demo_bots_then_stops(hive: Hive) -> None:
    hive.start("--demo-bots", "2")
    client = hive.client(hive.key("client"))
    wait_for(
        lambda: len(client.get("/v1/bots").json()["items"]) == 2,
        timeout=30,
        what="two demo bots registered",
    )
    task_id = client.post(
        "/v1/tasks", json={"type": "writing", "payload": {"text": "small bees.", "style": "title"}}
    ).json()["id"]
    done = wait_for(
        lambda: (t := task(client, task_id))["state"] == "succeeded" and t,
        timeout=20,
        what="a demo bot to do the task",
    )
    assert done["result"]["text"] == "Small Bees."
    bots = demo_bots(hive)
    assert len(bots) == 2
    assert hive.stop() == 0
    _gone, alive = psutil.wait_procs(bots, timeout=10)
    assert not alive
    with psycopg.connect(hive.db_url) as conn:
        states = [r[0] for r in conn.execute("SELECT state FROM fleet_view").fetchall()]
    assert states == ["deregistered", "deregistered"]
