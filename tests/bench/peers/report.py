"""The peers' section of docs/benchmarks.md: medians over the rounds, and Apiary against
PgQueuer with 2 workers round by round."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import Any

from tests.bench.peers.catalog import PEERS

APIARY = "apiary"
COLUMNS = (
    "system",
    "drain, 1 worker (jobs/s)",
    "drain, 2 workers (jobs/s)",
    "wall, 2 workers (jobs/s)",
    "submit -> start p50 (p99)",
    "submit -> done p50",
    "rounds",
)
HEADER = f"| {' | '.join(COLUMNS)} |\n|{'---|' * len(COLUMNS)}"
BASELINE = "pgqueuer"  # the ratios' denominator: PgQueuer with 2 workers


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def ratios(runs: dict[str, list[dict[str, Any]]]) -> list[tuple[float, float]]:
    """Per round: (Apiary drain / PgQueuer 2-worker drain, Apiary p50 / PgQueuer p50)."""
    pairs = zip(runs.get(APIARY, []), runs.get(BASELINE, []), strict=False)
    return [(a["drain"] / p["drain"], a["start_p50"] / p["start_p50"]) for a, p in pairs]


def render(
    runs: dict[str, list[dict[str, Any]]],
    *,
    command: str,
    machine: str,
    postgres: str,
    redis: str,
    concurrency: int,
    skipped: list[str],
) -> str:
    rows = []
    for name, results in runs.items():
        if not results:
            continue
        if name == APIARY:
            title = f"Apiary (bots of {concurrency} slots)"
        else:
            title = f"{PEERS[name].title} {results[0]['version']}"
        drain_1, drain_2 = f"{median(results, 'drain_1'):,.0f}", f"{median(results, 'drain'):,.0f}"
        rows.append(
            f"| {title} | {drain_1} | {drain_2} | {median(results, 'wall'):,.0f} |"
            f" {median(results, 'start_p50'):g} ({median(results, 'start_p99'):g}) ms |"
            f" {median(results, 'done_p50'):g} ms | {len(results)} |"
        )
    per_round = ratios(runs)
    ratio_rows = [f"| {n} | {d:.2f} | {s:.2f} |" for n, (d, s) in enumerate(per_round, 1)]
    if per_round:
        d_med = statistics.median(d for d, _ in per_round)
        s_med = statistics.median(s for _, s in per_round)
        ratio_rows.append(f"| median | {d_med:.2f} | {s_med:.2f} |")
    setups = "\n".join(
        f"- {PEERS[name].title} {results[0]['version']} (Python {results[0]['python']}):"
        f" {results[0]['setup']}."
        for name, results in runs.items()
        if name != APIARY and results
    )
    missing = "".join(f"\nSkipped: {reason}." for reason in skipped)
    return f"""<!-- peers:begin -->
## Beside the peers

Produced by `{command}` on {datetime.now(UTC):%Y-%m-%d}
(`make bench-peers`; `make bench` runs it too). Machine: {machine}; PostgreSQL {postgres};
Redis {redis}. Rounds interleaved (Apiary, then each peer, then again); every figure is the
median over the rounds. The same work for each: no-op jobs all enqueued first, then the
workers started; drain = first job start to last job finish as the system recorded them,
wall = from launching the workers to all done. Submit -> start / done: one job at a time
into the 2 idle workers (Apiary: its 2 bots), differences of the timestamps the system
recorded (the database's clock; Celery: the client's clock at publish, the worker's at
start, the result's `date_done`). What "start" is differs: PgQueuer's is its log's
`picked` row and Oban's `attempted_at`, both written when a worker's fetch query runs,
before the job reaches the worker; Celery's is the worker's clock as the task begins;
Apiary's is when its bot began the task as the hive records it from the finish (the
finish's time less the `ran_s` the bot measured), so later than the true start by the
report's way back to the hive. A worker is one OS process running the peer's own worker;
each peer runs in a virtualenv of its own, pinned.

{HEADER}
{chr(10).join(rows)}

{setups}{missing}

Apiary against PgQueuer with 2 workers, round by round (drain: Apiary / PgQueuer, higher
is better for Apiary; submit -> start p50: Apiary / PgQueuer, lower is better for Apiary):

| round | drain ratio | submit -> start p50 ratio |
|---|---|---|
{chr(10).join(ratio_rows)}
<!-- peers:end -->
"""
