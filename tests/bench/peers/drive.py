"""One round of one peer: its driver script in its own virtualenv against a fresh database
(or the private Redis), its raw measurements summarized like Apiary's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.bench.peers.catalog import Peer
from tests.bench.peers.drivers.workload import die_with_parent
from tests.bench.peers.venvs import HOME, REPO
from tests.bench.stats import summary_ms
from tests.pg import fresh_database

DRIVER_TIMEOUT_S = 1800


class DriverFailed(Exception):
    """A peer's driver failed mid-run; the message says where its log is, in one line."""


def drive(
    peer: Peer, python: Path, *, server: str, redis: str | None, jobs: int, samples: int
) -> dict[str, Any]:
    if peer.needs == "postgres":
        with fresh_database(server, f"apiary_peers_{peer.name}") as url:
            return summarize(run_driver(peer, python, url, jobs, samples))
    assert redis is not None
    return summarize(run_driver(peer, python, redis, jobs, samples))


def run_driver(peer: Peer, python: Path, url: str, jobs: int, samples: int) -> dict[str, Any]:
    log = HOME / peer.name / "last-run.log"
    command = [str(python), str(peer.driver), "bench", "--url", url, "--jobs", str(jobs)]
    command += ["--latency-samples", str(samples)]
    with open(log, "w") as err:
        try:
            out = subprocess.run(
                command,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                timeout=DRIVER_TIMEOUT_S,
                preexec_fn=die_with_parent,
            )
        except subprocess.TimeoutExpired:
            raise DriverFailed(f"{peer.name}: the driver timed out (log: {where(log)})") from None
    if out.returncode != 0:
        raise DriverFailed(f"{peer.name}: the driver exited {out.returncode} (log: {where(log)})")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """Rates in jobs/s and latencies in ms, keyed like ``tests.bench.hive_run``'s."""
    d1, d2, lat = raw["drain"]["1"], raw["drain"]["2"], raw["latency"]
    start, done = summary_ms(lat["start_s"]), summary_ms(lat["done_s"])
    return {
        "drain_1": round(d1["jobs"] / d1["span_s"]),
        "drain": round(d2["jobs"] / d2["span_s"]),
        "wall_1": round(d1["jobs"] / d1["wall_s"]),
        "wall": round(d2["jobs"] / d2["wall_s"]),
        "start_p50": start["p50"],
        "start_p99": start["p99"],
        "done_p50": done["p50"],
        "samples": len(lat["start_s"]),
        "version": raw["version"],
        "python": raw["python"],
        "setup": raw["setup"],
    }


def where(path: Path) -> Path:
    return path.relative_to(REPO)
