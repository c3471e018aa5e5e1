"""`make bench-peers`: Apiary beside PgQueuer, Oban for Python and Celery with Redis.

Each peer is installed, pinned, into a virtualenv of its own under .bench-peers/ (only when
missing or when its pins changed) and runs the same workload from a driver script in
tests/bench/peers/drivers/; Apiary runs ``tests.bench.hive_run`` (one `apiary serve`, and
1 then 2 bot processes as the peers' workers). Rounds are interleaved: Apiary, then each
peer, then again. Writes the medians and the per-round ratios of Apiary to PgQueuer with 2
workers into the marked peers section of docs/benchmarks.md. A peer that cannot run here
(no install, no Python new enough, no redis-server) is skipped with one line. PostgreSQL:
APIARY_DATABASE_URL's server when set, else the embedded one; a fresh database per run.
Not part of `make test`.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg

from store.database import database_url
from tests.bench.__main__ import machine
from tests.bench.hive_run import measure_hive
from tests.bench.peers import redis_server, section
from tests.bench.peers.catalog import PEERS, Peer
from tests.bench.peers.drive import DriverFailed, drive
from tests.bench.peers.report import APIARY, render
from tests.bench.peers.venvs import REPO, Skipped, ensure_venv

CONCURRENCY = 256  # each Apiary bot's slots


def peer_list(value: str) -> list[Peer]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(PEERS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer(s) {unknown}; known: {sorted(PEERS)}")
    return [PEERS[name] for name in names]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.peers", description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=10_000, help="no-op jobs per peer drain")
    ap.add_argument(
        "--apiary-tasks", type=int, default=None, help="no-op tasks per Apiary drain (--jobs)"
    )
    ap.add_argument("--latency-samples", type=int, default=300)
    ap.add_argument("--peers", type=peer_list, default=peer_list(",".join(PEERS)))
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = ap.parse_args(argv)
    if args.apiary_tasks is None:
        args.apiary_tasks = args.jobs  # the same work as each peer's
    return args


def command(args: argparse.Namespace) -> str:
    return (
        f"python -m tests.bench.peers --rounds {args.rounds} --jobs {args.jobs}"
        f" --apiary-tasks {args.apiary_tasks} --latency-samples {args.latency_samples}"
        f" --peers {','.join(p.name for p in args.peers)}"
    )


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    skipped: list[str] = []

    def skip(why: Exception) -> None:
        print(f"peers: skipped {why}", flush=True)
        skipped.append(str(why))

    pythons: dict[str, Path] = {}
    for peer in args.peers:
        try:
            pythons[peer.name] = ensure_venv(peer)
        except Skipped as why:
            skip(why)
    runs: dict[str, list[dict[str, Any]]] = {APIARY: [], **{name: [] for name in pythons}}
    with ExitStack() as stack:
        server = stack.enter_context(database_url(os.environ, (REPO / ".apiary").resolve()))
        redis = None
        if any(PEERS[name].needs == "redis" for name in pythons):
            try:
                redis = stack.enter_context(redis_server.redis_server())
            except Skipped as why:
                skip(why)
                pythons = {n: p for n, p in pythons.items() if PEERS[n].needs != "redis"}
        with psycopg.connect(server) as conn:
            postgres = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        for n in range(1, args.rounds + 1):
            print(f"round {n}: apiary ...", flush=True)
            result = apiary_round(server, args)
            runs[APIARY].append(result)
            print(f"round {n} apiary: {result}", flush=True)
            for name, python in list(pythons.items()):
                print(f"round {n}: {name} ...", flush=True)
                try:
                    result = drive(
                        PEERS[name],
                        python,
                        server=server,
                        redis=redis,
                        jobs=args.jobs,
                        samples=args.latency_samples,
                    )
                except DriverFailed as why:
                    skip(why)
                    del pythons[name]
                    continue
                runs[name].append(result)
                print(f"round {n} {name}: {figures(result)}", flush=True)
    report = render(
        runs,
        command=command(args),
        machine=machine(),
        postgres=postgres,
        redis=redis_server.version(),
        concurrency=CONCURRENCY,
        skipped=skipped,
    )
    old = args.out.read_text() if args.out.exists() else ""
    args.out.write_text(section.replace(old, report))
    print(report, flush=True)
    return 0


def apiary_round(server: str, args: argparse.Namespace) -> dict[str, Any]:
    """Apiary's turn, as each peer's: a drain by 1 worker (bot process), then a drain by 2
    and submit -> start / done into those 2 idle bots."""
    one = measure_hive(
        server, REPO, tasks=args.apiary_tasks, bots=1, concurrency=CONCURRENCY, latency=0
    )
    two = measure_hive(
        server,
        REPO,
        tasks=args.apiary_tasks,
        bots=2,
        concurrency=CONCURRENCY,
        latency=args.latency_samples,
    )
    return {**two, "drain_1": one["drain"], "wall_1": one["wall"]}


def figures(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("setup", "version", "python")}


if __name__ == "__main__":
    sys.exit(main())
