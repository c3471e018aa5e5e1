"""Submit -> the dashboard's stream shows it: how long after a task's event is committed a
signed-in browser hears that the views moved past it.

One task at a time: the clock starts when ``POST /v1/tasks`` returns (the event is
committed; the response carries its log position) and stops when ``/dashboard/stream``
delivers a ``views`` event whose ``tasks`` position has reached it (the page re-fetches
its data on that event). Both ends are read on this process's clock.
``python -m tests.bench.dashboard_stream [samples]`` runs it alone.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx

from tests.bench.alone import run_alone
from tests.bench.stats import percentile
from tests.e2e.harness import Hive
from tests.e2e.sse import DashboardStream


def push_latency(hive: Hive, client: httpx.Client, key: str, count: int) -> dict[str, Any]:
    samples = []
    with DashboardStream(hive.url, key) as stream:
        for i in range(count):
            since = len(stream.heard)
            created = client.post("/v1/tasks", json={"type": "sse", "payload": {"i": i}})
            committed = time.perf_counter()
            created.raise_for_status()
            position = created.json()["position"]
            heard = stream.wait(
                lambda h, p=position: h.kind == "views" and h.data.get("tasks", 0) >= p,
                since=since,
                timeout=30,
            )
            samples.append(max(0.0, heard.at - committed))  # heard mid-response: 0
    return {
        "count": count,
        **{f"p{p}": round(percentile(samples, p) * 1000, 1) for p in (50, 95)},
        "max": round(max(samples) * 1000, 1),
    }


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50

    def measure(hive: Hive) -> dict[str, Any]:
        key = hive.key("admin")
        return push_latency(hive, hive.client(key), key, count)

    return run_alone("sse", measure)


if __name__ == "__main__":
    sys.exit(main())
