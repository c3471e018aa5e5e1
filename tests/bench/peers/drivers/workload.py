"""The workload every peer runs, identical for each: standard library only.

A driver script (``drive_<peer>.py``) runs inside that peer's own virtualenv. It defines a
``Peer`` (how to enqueue, count and time jobs with that library, and how to be a worker)
and calls ``main(Peer)``. Run without ``worker`` it is the bench: it prints one JSON line
on stdout with the raw measurements (seconds); run as ``worker`` it is one worker process.

1. drain: ``--jobs`` no-op jobs enqueued first in batches, then 1 (and, next, 2) worker
   processes started; ``span_s`` is the first job's start to the last job's finish as the
   peer recorded them, ``wall_s`` from launching the workers to all done.
2. latency: 2 idle workers (each has said it is ready), one job at a time, each waited for;
   per job, start - enqueue and finish - enqueue as recorded by the database (or worker).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

BATCH = 1000
DRAIN_TIMEOUT_S = 600.0
JOB_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1


class Peer(Protocol):
    version: str
    setup: str  # how its workers are configured, for the report

    def prepare(self) -> None: ...
    def reset(self) -> None: ...
    def enqueue(self, count: int) -> None: ...
    def finished(self) -> int: ...
    def drain_span(self) -> float: ...
    def submit(self) -> Any: ...
    def is_done(self, job: Any) -> bool: ...
    def latencies(self, jobs: list[Any]) -> tuple[list[float], list[float]]: ...
    def close(self) -> None: ...


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=("bench", "worker"))
    ap.add_argument("--url", required=True, help="the peer's database or Redis URL")
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--latency-samples", type=int, default=300)
    ap.add_argument("--index", type=int, default=0, help="worker: its number")
    ap.add_argument("--ready", type=Path, help="worker: the file to create once ready")
    return ap.parse_args(argv)


def main(make_peer: Callable[[argparse.Namespace], Peer], work: Callable[..., None]) -> int:
    args = arguments()
    if args.role == "worker":
        work(args)
        return 0
    peer = make_peer(args)
    try:
        peer.prepare()
        result = {
            "version": peer.version,
            "setup": peer.setup,
            "python": sys.version.split()[0],
            "drain": {str(n): drain(peer, args, n) for n in (1, 2)},
            "latency": latency(peer, args, 2),
        }
    finally:
        peer.close()
    print(json.dumps(result), flush=True)
    return 0


def drain(peer: Peer, args: argparse.Namespace, workers: int) -> dict[str, float]:
    peer.reset()
    for start in range(0, args.jobs, BATCH):
        peer.enqueue(min(BATCH, args.jobs - start))
    launched = time.perf_counter()
    with fleet(args, workers, ready=False) as procs:
        wait_for(
            lambda: running(procs) and peer.finished() >= args.jobs,
            timeout=DRAIN_TIMEOUT_S,
            what=f"{args.jobs} jobs drained by {workers} worker(s)",
            interval=0.05,
        )
        wall = time.perf_counter() - launched
    return {"jobs": args.jobs, "span_s": peer.drain_span(), "wall_s": wall}


def latency(peer: Peer, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    peer.reset()
    jobs = []
    with fleet(args, workers, ready=True) as procs:
        for _ in range(args.latency_samples):
            jobs.append(one_job(peer, procs))
    start, done = peer.latencies(jobs)
    return {"workers": workers, "start_s": start, "done_s": done}


def one_job(peer: Peer, procs: list[subprocess.Popen[bytes]]) -> Any:
    job = peer.submit()
    wait_for(lambda: running(procs) and peer.is_done(job), timeout=JOB_TIMEOUT_S, what="a job")
    return job


@contextmanager
def fleet(
    args: argparse.Namespace, workers: int, *, ready: bool
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``workers`` worker processes of this script; with ``ready``, returns once each has
    created its ready file. Stopped with SIGTERM (SIGKILL after a grace) on exit."""
    with tempfile.TemporaryDirectory(prefix="peer-fleet-") as tmp:
        flags = [Path(tmp) / f"ready-{i}" for i in range(workers)]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    sys.argv[0],
                    "worker",
                    *("--url", args.url, "--index", str(i), "--ready", str(flag)),
                ],
                stdout=sys.stderr,  # stdout carries only the result line
                preexec_fn=die_with_parent,
            )
            for i, flag in enumerate(flags)
        ]
        try:
            if ready:
                wait_for(
                    lambda: running(procs) and all(flag.exists() for flag in flags),
                    timeout=READY_TIMEOUT_S,
                    what=f"{workers} workers ready",
                )
            yield procs
        finally:
            stop(procs)


def running(procs: list[subprocess.Popen[bytes]]) -> bool:
    """True while every worker runs; a worker that exited fails the run at once."""
    for proc in procs:
        if proc.poll() is not None:
            raise RuntimeError(f"a worker exited {proc.returncode} (its output: stderr)")
    return True


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mark_ready(flag: Path | None) -> None:
    if flag is not None:
        flag.touch()


def die_with_parent() -> None:
    """In a child before exec: the kernel sends it SIGTERM when its parent dies, so a crashed
    bench leaves no worker behind."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_for(
    condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.01
) -> Any:
    """Poll ``condition`` until it holds; fail loudly at the deadline (tests/waiting.py's)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)  # pacing between checks of a condition, not a wait for an outcome
