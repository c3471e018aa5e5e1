"""PgQueuer under the peers' workload (workload.py), in PgQueuer's own virtualenv.

Jobs go in through ``Queries.enqueue``; a worker is what ``pgq run`` runs: ``pgqueuer.run``
on a factory that yields a ``PgQueuer`` on one asyncpg connection, its defaults kept
(batch size 10, LISTEN/NOTIFY wake-ups), under uvloop as the CLI does. asyncpg, PgQueuer's
first driver: its psycopg driver waits for notifications in ``notifies(timeout=1.0)``,
which holds the connection, so a woken worker's dequeue waits up to a second. Times come from
``pgqueuer_log`` (database clock): 'queued' at insert, 'picked' when a worker claims the
job, 'successful' when the worker's completion buffer writes it (the job leaves the queue).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import version

import asyncpg
import psycopg
import uvloop
import workload
from pgqueuer import PgQueuer, Queries, run
from pgqueuer.db import AsyncpgDriver
from pgqueuer.errors import FailingListenerError
from pgqueuer.models import Job

ENTRYPOINT = "noop"


class PgQueuerPeer:
    setup = "pgqueuer.run (as `pgq run`), defaults (batch size 10), asyncpg driver, uvloop"

    def __init__(self, args: argparse.Namespace) -> None:
        self.version = version("pgqueuer")
        self.url = args.url
        self.sync = psycopg.connect(args.url, autocommit=True)
        self.loop = asyncio.Runner()
        self.aconn = self.loop.run(asyncpg.connect(args.url))
        self.queries = Queries(AsyncpgDriver(self.aconn))

    def prepare(self) -> None:
        self.loop.run(self.queries.install())

    def reset(self) -> None:
        self.sync.execute("TRUNCATE pgqueuer, pgqueuer_log")

    def enqueue(self, count: int) -> None:
        self.loop.run(self.queries.enqueue([ENTRYPOINT] * count, [None] * count, [0] * count))

    def finished(self) -> int:
        return self._one("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'")

    def drain_span(self) -> float:
        return float(
            self._one(
                "SELECT extract(epoch FROM max(created) FILTER (WHERE status = 'successful')"
                " - min(created) FILTER (WHERE status = 'picked')) FROM pgqueuer_log"
            )
        )

    def submit(self) -> int:
        return int(self.loop.run(self.queries.enqueue(ENTRYPOINT, None))[0])

    def is_done(self, job: int) -> bool:
        row = self.sync.execute(
            "SELECT 1 FROM pgqueuer_log WHERE job_id = %s AND status = 'successful'", (job,)
        ).fetchone()
        return row is not None

    def latencies(self, jobs: list[int]) -> tuple[list[float], list[float]]:
        rows = self.sync.execute(
            "SELECT extract(epoch FROM max(created) FILTER (WHERE status = 'picked')"
            "  - min(created) FILTER (WHERE status = 'queued')),"
            " extract(epoch FROM max(created) FILTER (WHERE status = 'successful')"
            "  - min(created) FILTER (WHERE status = 'queued'))"
            " FROM pgqueuer_log WHERE job_id = ANY(%s) GROUP BY job_id",
            (jobs,),
        ).fetchall()
        return [float(r[0]) for r in rows], [float(r[1]) for r in rows]

    def close(self) -> None:
        self.loop.run(self.aconn.close())
        self.loop.close()
        self.sync.close()

    def _one(self, query: str) -> int:
        row = self.sync.execute(query).fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]


def work(args: argparse.Namespace) -> None:
    @asynccontextmanager
    async def factory() -> AsyncIterator[PgQueuer]:
        conn = await asyncpg.connect(args.url)
        pgq = PgQueuer(AsyncpgDriver(conn))

        @pgq.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            return None

        announcing = asyncio.create_task(announce_ready(pgq, args))
        try:
            yield pgq
        finally:
            announcing.cancel()
            await conn.close()

    uvloop.run(run(factory))


async def announce_ready(pgq: PgQueuer, args: argparse.Namespace) -> None:
    """Ready once a NOTIFY round-trips through this worker's listener."""
    while True:
        try:
            await pgq.qm.listener_healthy(timeout=timedelta(seconds=1))
        except FailingListenerError:
            continue
        workload.mark_ready(args.ready)
        return


if __name__ == "__main__":
    raise SystemExit(workload.main(PgQueuerPeer, work))
