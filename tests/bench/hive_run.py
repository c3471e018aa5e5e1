"""One measured hive: a fresh database migrated by a checkout's code, one `apiary serve` and
the bots from that checkout, then ``drain`` and ``idle_latency`` of ``tests.bench``.

Shared by the side-by-side runs: ``tests.bench.ab`` (this checkout against another commit)
and ``tests.bench.peers`` (Apiary beside other job queues).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tests.bench.__main__ import drain, idle_latency
from tests.e2e.harness import Hive, apiary
from tests.pg import fresh_database


def measure_hive(
    server: str, side: Path, *, tasks: int, bots: int, concurrency: int, latency: int
) -> dict[str, Any]:
    """Drain ``tasks`` no-op tasks with ``bots`` bots, then ``latency`` tasks one at a time
    into the idle fleet (none: no latencies); rates in tasks/s, latencies in ms."""
    home = Path(tempfile.mkdtemp(prefix="apiary-hive-run-"))
    try:
        with fresh_database(server, "apiary_hive_run") as url:
            env = {**os.environ, "APIARY_DATABASE_URL": url, "APIARY_HOME": str(home)}
            apiary("db", "migrate", env=env, cwd=side)
            hive = Hive(db_url=url, home=home, settings={"APIARY_LOG_LEVEL": "WARNING"}, cwd=side)
            hive.start()
            try:
                client = hive.client(hive.key("admin"))
                enrol = hive.key("bot")
                d = drain(hive, client, enrol, tasks, bots, concurrency)
                try:
                    lat = idle_latency(hive, client, latency) if latency else None
                finally:
                    for bot in d.pop("fleet"):
                        bot.stop()
            finally:
                hive.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {
        "drain": round(d["per_s_span"]),
        "wall": round(d["per_s_wall"]),
        "startup_s": round(d["startup_s"], 3),
        "views_lag_s": round(d["views_lag_s"], 3),
        **(
            {
                "start_p50": lat["start"]["p50"],
                "start_p99": lat["start"]["p99"],
                "done_p50": lat["done"]["p50"],
            }
            if lat
            else {}
        ),
    }
