"""Submit -> the dashboard's stream shows it: how long after a task's event is committed a
signed-in browser hears that the views moved past it.

One task at a time: the clock starts when ``POST /v1/tasks`` returns (the event is
committed; the response carries its log position) and stops when ``/dashboard/stream``
delivers a ``views`` event whose ``tasks`` position has reached it (the page re-fetches
its data on that event). Both ends are read on this process's clock.
``python -m tests.bench.dashboard_stream [samples]`` runs it alone.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from api.bootstrap import migrate
from store.database import database_url
from tests.bench.stats import percentile
from tests.e2e.harness import Hive
from tests.e2e.sse import DashboardStream
from tests.pg import create_database, drop_database, unique_database_name

REPO = Path(__file__).resolve().parents[2]


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
    with database_url(os.environ, (REPO / ".apiary").resolve()) as server:
        name = unique_database_name("apiary_bench_sse")
        url = create_database(server, name)
        home = Path(tempfile.mkdtemp(prefix="apiary-bench-sse-"))
        try:
            migrate(url)
            hive = Hive(db_url=url, home=home, settings={"APIARY_LOG_LEVEL": "WARNING"}).start()
            try:
                key = hive.key("admin")
                print(push_latency(hive, hive.client(key), key, count), flush=True)
            finally:
                hive.stop()
        finally:
            drop_database(server, name)
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
