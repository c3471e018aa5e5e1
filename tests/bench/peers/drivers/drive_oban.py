"""Oban for Python (PyPI ``oban``) under the peers' workload (workload.py), in its own
virtualenv.

The schema comes from ``oban.schema.install``; jobs go in through ``Oban.enqueue_many`` of a
client-mode instance; a worker is what ``oban start`` runs: an ``Oban`` with one queue on
the CLI's default pool (1-10 connections), orjson for JSON, under uvloop. Times come from
``oban_jobs`` (database clock): ``inserted_at``, ``attempted_at`` when a producer fetches
the job, ``completed_at`` when it is acked.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from importlib.metadata import version
from typing import Any

import orjson
import psycopg
import uvloop
import workload
from oban import Oban, worker
from oban.schema import install
from psycopg.types.json import set_json_dumps, set_json_loads

QUEUE = "default"
LIMIT = 50  # jobs a worker runs at once (Oban has no default: the queue's limit is required)


@worker(queue=QUEUE)
class Noop:
    async def process(self, job: Any) -> None:
        return None


class ObanPeer:
    setup = f"`oban start` equivalent: queue limit {LIMIT}, default pool, orjson, uvloop"

    def __init__(self, args: argparse.Namespace) -> None:
        self.version = version("oban")
        self.sync = psycopg.connect(args.url, autocommit=True)
        self.loop = asyncio.Runner()
        self.pool = self.loop.run(Oban.create_pool(args.url))
        self.oban = Oban(pool=self.pool)  # client mode: no queues, enqueues only

    def prepare(self) -> None:
        self.loop.run(install(self.pool))

    def reset(self) -> None:
        self.sync.execute("TRUNCATE oban_jobs")

    def enqueue(self, count: int) -> None:
        self.loop.run(self.oban.enqueue_many([Noop.new({"i": i}) for i in range(count)]))

    def finished(self) -> int:
        return self._one("SELECT count(*) FROM oban_jobs WHERE state = 'completed'")

    def drain_span(self) -> float:
        return float(
            self._one(
                "SELECT extract(epoch FROM max(completed_at) - min(attempted_at)) FROM oban_jobs"
            )
        )

    def submit(self) -> int:
        return int(self.loop.run(self.oban.enqueue(Noop.new({}))).id)

    def is_done(self, job: int) -> bool:
        row = self.sync.execute(
            "SELECT 1 FROM oban_jobs WHERE id = %s AND state = 'completed'", (job,)
        ).fetchone()
        return row is not None

    def latencies(self, jobs: list[int]) -> tuple[list[float], list[float]]:
        rows = self.sync.execute(
            "SELECT extract(epoch FROM attempted_at - inserted_at),"
            " extract(epoch FROM completed_at - inserted_at) FROM oban_jobs WHERE id = ANY(%s)",
            (jobs,),
        ).fetchall()
        return [float(r[0]) for r in rows], [float(r[1]) for r in rows]

    def close(self) -> None:
        self.loop.run(self.pool.close())
        self.loop.close()
        self.sync.close()

    def _one(self, query: str) -> Any:
        row = self.sync.execute(query).fetchone()
        assert row is not None
        return row[0]


def work(args: argparse.Namespace) -> None:
    set_json_dumps(orjson.dumps)
    set_json_loads(orjson.loads)

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        pool = await Oban.create_pool(args.url)
        try:
            async with Oban(pool=pool, queues={QUEUE: LIMIT}):
                workload.mark_ready(args.ready)
                await stopping.wait()
        finally:
            await pool.close()

    uvloop.run(run())


if __name__ == "__main__":
    raise SystemExit(workload.main(ObanPeer, work))
