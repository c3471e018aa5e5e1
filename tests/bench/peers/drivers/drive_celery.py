"""Celery with Redis under the peers' workload (workload.py), in Celery's own virtualenv.

Redis (a private server the bench started) is the broker (db 0) and the result backend
(db 1): a task is done when its result is stored. Jobs go in through ``apply_async`` on one
producer; a worker is ``celery worker`` (``app.worker_main``) with the solo pool, one OS
process like every other peer's worker, gossip and mingle off. Redis records no enqueue
time, so a job's enqueue time is the client's clock just before publishing; its start is
the worker's clock as the task body begins (the task's result); its finish is the
result's ``date_done``. One machine, one clock.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import datetime
from importlib.metadata import version

import redis
import workload
from celery import Celery
from celery.signals import worker_ready

app = Celery("peers")
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
POOL = "solo"


@app.task(name="noop")
def noop() -> float:
    return time.time()


def configure(url: str) -> None:
    app.conf.update(broker_url=f"{url}/0", result_backend=f"{url}/1")


class CeleryPeer:
    setup = f"`celery worker --pool {POOL} --without-gossip --without-mingle`, Redis results"

    def __init__(self, args: argparse.Namespace) -> None:
        configure(args.url)
        self.version = version("celery")
        self.broker = redis.Redis.from_url(f"{args.url}/0")
        self.results = redis.Redis.from_url(f"{args.url}/1")
        self.ids: list[str] = []
        self.sent: dict[str, float] = {}

    def prepare(self) -> None:
        self.broker.ping()

    def reset(self) -> None:
        self.broker.flushall()
        self.ids = []
        self.sent = {}

    def enqueue(self, count: int) -> None:
        with app.producer_or_acquire() as producer:
            for _ in range(count):
                task_id = str(uuid.uuid4())
                noop.apply_async(task_id=task_id, producer=producer)
                self.ids.append(task_id)

    def finished(self) -> int:
        return int(self.results.dbsize())

    def drain_span(self) -> float:
        metas = self._metas(self.ids)
        return max(m["done"] for m in metas) - min(m["start"] for m in metas)

    def submit(self) -> str:
        task_id = str(uuid.uuid4())
        self.sent[task_id] = time.time()
        noop.apply_async(task_id=task_id)
        return task_id

    def is_done(self, job: str) -> bool:
        return bool(self.results.exists(key(job)))

    def latencies(self, jobs: list[str]) -> tuple[list[float], list[float]]:
        metas = self._metas(jobs)
        sent = [self.sent[job] for job in jobs]
        return (
            [m["start"] - s for m, s in zip(metas, sent, strict=True)],
            [m["done"] - s for m, s in zip(metas, sent, strict=True)],
        )

    def close(self) -> None:
        self.broker.close()
        self.results.close()

    def _metas(self, jobs: list[str]) -> list[dict[str, float]]:
        metas = []
        for start in range(0, len(jobs), workload.BATCH):
            for raw in self.results.mget([key(j) for j in jobs[start : start + workload.BATCH]]):
                meta = json.loads(raw)
                done = datetime.fromisoformat(meta["date_done"]).timestamp()
                metas.append({"start": float(meta["result"]), "done": done})
        return metas


def key(task_id: str) -> str:
    return f"celery-task-meta-{task_id}"


def work(args: argparse.Namespace) -> None:
    configure(args.url)

    def ready(**_: object) -> None:
        workload.mark_ready(args.ready)

    worker_ready.connect(ready, weak=False)

    app.worker_main(
        [
            "worker",
            f"--pool={POOL}",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=peer{args.index}@%h",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(workload.main(CeleryPeer, work))
