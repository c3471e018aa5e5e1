"""A/B: this checkout against another commit, in one window, rounds interleaved.

The machine is shared and noisy: absolute numbers drift, ratios measured side by side
hold. For each of ``rounds`` rounds, first the base commit, then this checkout: a fresh
database migrated by that side's code, one `apiary serve` and the bots from that side's
checkout (a detached git worktree of the base), and the same measurement from here
(``tests.bench.hive_run``: the drain rate, and submit -> start with idle bots). Prints
each run and the medians with their ratio.

``python -m tests.bench.ab --base fde4c0b [--rounds 3 --tasks 20000 --bots 4 --latency 300]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from store.database import database_url
from tests.bench.hive_run import measure_hive

REPO = Path(__file__).resolve().parents[2]


def checkout(rev: str) -> Path:
    where = Path(tempfile.mkdtemp(prefix="apiary-ab-")) / rev
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(where), rev],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return where


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.ab", description=__doc__)
    ap.add_argument("--base", required=True, help="the commit to compare against")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--bots", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--latency", type=int, default=300, help="idle submit -> start samples")
    args = ap.parse_args()
    base = checkout(args.base)
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    try:
        with database_url(os.environ, (REPO / ".apiary").resolve()) as server:
            for n in range(args.rounds):
                for name, side in (("base", base), ("head", REPO)):
                    result = measure_hive(
                        server,
                        side,
                        tasks=args.tasks,
                        bots=args.bots,
                        concurrency=args.concurrency,
                        latency=args.latency,
                    )
                    runs[name].append(result)
                    print(f"round {n + 1} {name}: {result}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=REPO, check=False)
    for key in ("drain", "wall", "start_p50", "start_p99"):
        b = statistics.median(r[key] for r in runs["base"])
        h = statistics.median(r[key] for r in runs["head"])
        print(f"{key}: base {b}, head {h}, head/base {h / b:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
