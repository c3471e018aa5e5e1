"""The floor under submit -> start: what the parts of Apiary's path cost on this machine
before any of Apiary's own work, beside its measured submit -> start.

    python -m tests.bench.floor [--samples 500]

Against one `apiary serve` on a fresh database (no bot, nothing else running), one client
with a keep-alive connection (the standard library's, as the bots use):
- an HTTP round trip to the server: ``GET /healthz`` (no key, no database);
- an authenticated one that reads the database: ``GET /v1/tasks/{id}``;
- a bare ``INSERT`` + ``COMMIT`` of one row into a plain (logged) table, straight to
  PostgreSQL: one durable write.

A task's way from submit to start holds at least: the submission's request and its
durable write, the claim's answer to the bot, and, for a fast task whose start the hive
records from its finish, the report's request back: three requests through the API's
stack and one durable write. Prints each part's p50 and two sums: with bare requests
(``/healthz``), and with requests that carry a key and read the database as the API's
do.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from store.database import database_url
from tests.e2e.harness import Hive, apiary
from tests.pg import fresh_database

REPO = Path(__file__).resolve().parents[2]


def p50_ms(action: Callable[[], object], samples: int) -> float:
    for _ in range(min(50, samples)):
        action()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def measure(server: str, samples: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="apiary-floor-"))
    try:
        with fresh_database(server, "apiary_floor") as url:
            env = {**os.environ, "APIARY_DATABASE_URL": url, "APIARY_HOME": str(home)}
            apiary("db", "migrate", env=env, cwd=REPO)
            hive = Hive(db_url=url, home=home, settings={"APIARY_LOG_LEVEL": "WARNING"})
            hive.start()
            try:
                key = hive.key("admin")
                task_id = hive.client(key).post("/v1/tasks", json={"type": "x"}).json()["id"]
                where = urlsplit(hive.url)
                conn = http.client.HTTPConnection(where.hostname or "", where.port)
                auth = {"Authorization": f"Bearer {key}"}

                def get(path: str, headers: dict[str, str]) -> None:
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200, response.status

                health = p50_ms(lambda: get("/healthz", {}), samples)
                read = p50_ms(lambda: get(f"/v1/tasks/{task_id}", auth), samples)
                conn.close()
            finally:
                hive.stop()
            with psycopg.connect(url) as db:
                db.execute("CREATE TABLE floor_rows (id serial PRIMARY KEY, doc jsonb)")
                db.commit()

                def write() -> None:
                    db.execute("INSERT INTO floor_rows (doc) VALUES ('{}')")
                    db.commit()

                commit = p50_ms(write, samples)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"healthz_ms": health, "authenticated_read_ms": read, "insert_commit_ms": commit}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.floor", description=__doc__)
    ap.add_argument("--samples", type=int, default=500)
    args = ap.parse_args()
    with database_url(os.environ, (REPO / ".apiary").resolve()) as server:
        parts = measure(server, args.samples)
    for name, value in parts.items():
        print(f"{name}: {value} ms")
    bare = 3 * parts["healthz_ms"] + parts["insert_commit_ms"]
    keyed = 3 * parts["authenticated_read_ms"] + parts["insert_commit_ms"]
    print(f"3 bare requests + 1 durable write: {bare:.3f} ms")
    print(f"3 requests with a key and a read + 1 durable write: {keyed:.3f} ms")


if __name__ == "__main__":
    main()
