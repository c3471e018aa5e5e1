"""Dashboard benchmark: first load of each page with 1,000,000 tasks in the views.

The tasks view is filled directly (generate_series: a realistic mix of states, types and
priorities), its counts per (state, type, priority) with it, then a real `apiary serve`
answers the pages. "First load" is what a browser needs before it can draw: the page's
HTML plus its data request, timed from this process over HTTP, each the first request of
its kind after start (no warm cache of ours).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.bench.stats import summary_ms
from tests.e2e.harness import Hive, signed_in

FILL = """
INSERT INTO tasks_view (task_id, type, priority, capabilities, state, payload, submitted_by,
                        submitted_at, seq, version, position)
SELECT gen_random_uuid(), (ARRAY['code', 'writing', 'analysis', 'noop'])[1 + i %% 4], i %% 10,
       ARRAY['code'],
       (ARRAY['succeeded', 'succeeded', 'succeeded', 'succeeded', 'failed', 'pending',
              'running', 'assigned', 'cancelled'])[1 + i %% 9],
       '{}', 'bench', now() - make_interval(secs => %s - i), i, 1, i
FROM generate_series(1, %s) AS i
"""
# The counts the tasks view keeps with its rows (filled directly too, to match them).
COUNT = """
INSERT INTO task_counts (state, type, priority, n)
SELECT state, type, priority, count(*) FROM tasks_view GROUP BY state, type, priority
"""


def bench_dashboard(url: str, home: Path, tasks: int, rounds: int) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FILL, (tasks, tasks))
        conn.execute(COUNT)
        conn.execute("ANALYZE tasks_view")
    hive = Hive(db_url=url, home=home, settings={"APIARY_LOG_LEVEL": "WARNING"}).start()
    try:
        key = hive.key("client")
        cookies = signed_in(hive.url, key).cookies  # the pages' sign-in: a session
        bearer = {"Authorization": f"Bearer {key}"}  # the scrape's
        pages = {
            "overview": ("/dashboard", "/dashboard/data/overview"),
            "tasks": ("/dashboard/tasks", "/dashboard/data/tasks"),
            "failed tasks": ("/dashboard/tasks?state=failed", "/dashboard/data/tasks?state=failed"),
            "bots": ("/dashboard/bots", "/dashboard/data/bots"),
            "schedules": ("/dashboard/schedules", "/dashboard/data/schedules"),
            "messages": ("/dashboard/messages", "/dashboard/data/messages"),
            "`/metrics` scrape": ("/metrics",),
        }
        out: dict[str, Any] = {"tasks_in_view": tasks, "rounds": rounds, "pages": list(pages)}
        with httpx.Client(base_url=hive.url, cookies=cookies, headers=bearer, timeout=30) as client:
            for name, paths in pages.items():
                times = []
                for _ in range(rounds):
                    start = time.perf_counter()
                    for path in paths:
                        client.get(path).raise_for_status()
                    times.append(time.perf_counter() - start)
                out[name] = {"first": round(times[0] * 1000, 1), **summary_ms(times)}
        return out
    finally:
        hive.stop()
