"""Scaling benchmark: backlog -> a launched bot has registered, and load gone -> minimum.

A pool of at most 3 bots and at least 0 (so the first pending task is the backlog crossing
the threshold); each trial submits a burst of tasks to an empty pool, then waits for the
pool to be empty again. Times are differences of server-side timestamps: the task's
submission and the launched bot's registration (both from the views); the return to the
minimum is measured by this process from the last task's completion.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.bench.stats import summary_ms
from tests.e2e.harness import Hive
from tests.waiting import wait_for

POOL = {
    "name": "bench",
    "capabilities": ["writing"],
    "min_bots": 0,
    "max_bots": 3,
    "max_concurrency": 8,
    "up_cooldown_s": 0,
    "down_cooldown_s": 2,
}
SETTINGS = {
    "APIARY_POOLS": json.dumps([POOL]),
    "APIARY_SCALER_INTERVAL_S": "0.2",
    "APIARY_LOG_LEVEL": "WARNING",
}


def bench_scaling(url: str, home: Path, trials: int) -> dict[str, Any]:
    hive = Hive(db_url=url, home=home, settings=SETTINGS).start()
    try:
        client = hive.client(hive.key("admin"))
        triggers, returns = [], []
        for n in range(trials):
            trigger, back = _trial(client, n)
            triggers.append(trigger)
            returns.append(back)
        return {
            "pool": POOL,
            "trials": trials,
            "trigger": summary_ms(triggers),
            "trigger_max_s": max(triggers),
            "return": summary_ms(returns),
            "return_max_s": max(returns),
        }
    finally:
        hive.stop()


def _bots(client: httpx.Client) -> list[dict[str, Any]]:
    return [b for b in client.get("/v1/bots").json()["items"] if b["pool"] == "bench"]


def _trial(client: httpx.Client, n: int) -> tuple[float, float]:
    known = {b["id"] for b in _bots(client)}
    body = {"text": f"trial {n} of the scaling bench.", "style": "summary"}
    created = client.post(
        "/v1/tasks/batch", json={"tasks": [{"type": "writing", "payload": body}] * 50}
    )
    created.raise_for_status()
    items = [i["task"] for i in created.json()["items"]]
    submitted = min(datetime.fromisoformat(t["submitted_at"]) for t in items)
    first = wait_for(
        lambda: sorted(
            (b for b in _bots(client) if b["id"] not in known), key=lambda b: b["registered_at"]
        ),
        timeout=30,
        what="a launched bot registered",
        interval=0.02,
    )[0]
    trigger = (datetime.fromisoformat(first["registered_at"]) - submitted).total_seconds()
    wait_for(
        lambda: all(
            client.get(f"/v1/tasks/{t['id']}").json()["state"] == "succeeded" for t in items
        ),
        timeout=60,
        what="the burst done",
    )
    done = time.monotonic()
    wait_for(
        lambda: not [b for b in _bots(client) if b["state"] in ("ready", "draining")],
        timeout=60,
        what="the pool back at its minimum (0 bots)",
        interval=0.05,
    )
    return trigger, time.monotonic() - done
