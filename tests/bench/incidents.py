"""Incident detection, and the way from an incident to shedding (issue 13, "Speed and cost").

A real `apiary serve` and three real `apiary bot` processes, one per task type
(``TYPES``), each running a command that exits 64 (bad input: the task fails for good,
one ``Task.Failed`` and no retries to run on). Each trial submits one task of each type
in one batch: three failures within milliseconds, touching three bots and three types,
the detector's ``cascade`` (which the default degradation rules map to ``degraded``).
Meanwhile a client key submits one low-priority task every ``SUBMIT_EVERY_S`` until an
answer is 503 with ``Retry-After``.

Measured per trial, from the log's own timestamps (as ``GET /v1/incidents/{id}`` and
``GET /v1/mode`` show them): the first failing event the incident cites -> its
``Incident.Opened`` (and the last event it cites at opening, the one that tripped it ->
``Opened``: the detector's own reaction) -> the ``HiveMode`` event entering ``degraded``;
then, on this process's wall clock (the same machine as the server), that event -> the
first 503 answer received. Trial n of N starts n/N of the detector's one-second pace late
(``stagger``), so that the trials sample every point of that pace. Between trials the
window empties, the incident resolves after its quiet period and the mode comes back to
normal (``CHANGES`` makes those short), each waited on with a deadline, so that every
trial opens a new episode; a trial whose incident cites an event from before its own batch
fails loudly.

Run alone: ``python -m tests.bench.incidents --trials 5``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from runtime.incidents import MIN_ROUND_S
from tests.bench.alone import run_in_database
from tests.bench.stats import percentile
from tests.e2e.harness import Bot, Hive, start_bot
from tests.waiting import wait_for

TYPES = ("bench-alpha", "bench-beta", "bench-gamma")
LOW = "bench-low"  # served by no bot: what is accepted stays pending
FAIL = "sh -c 'exit 64'"  # EX_USAGE: not retryable
SUBMIT_EVERY_S = 0.01
CHANGES: dict[str, dict[str, Any]] = {
    # A short window and quiet period, so that a trial's cascade is over in seconds; the
    # quiet (2 s) outlasts the one-second buckets the window drops, so once resolved no
    # failure of the trial is left in the window to join the next trial's.
    "incidents": {"window_s": 3.0, "quiet_s": 2.0, "pending_age_s": 3600.0},
    "degradation": {"calm_s": 0.5},
    # One failure per bot per trial would quarantine each bot at its fifth (the breaker's
    # default): a trial short of a bot measures the breaker, not the detector.
    "breaker": {"enabled": False},
}
QUIET = {"APIARY_LOG_LEVEL": "WARNING"}


@dataclass(frozen=True)
class Trial:
    """One trial's moments: the log's timestamps, and the first 503 on this clock."""

    first_failure: datetime
    first_event: str
    tripped: datetime
    opened: datetime
    degraded: datetime
    shed: datetime
    accepted: int  # low-priority submissions accepted before the first 503


class Shedder(threading.Thread):
    """A client submitting one low-priority task every ``SUBMIT_EVERY_S`` until an answer
    is 503 with ``Retry-After`` (when it was received is ``shed``) or it is stopped."""

    def __init__(self, client: httpx.Client) -> None:
        super().__init__(name="bench-shedder", daemon=True)
        self.client = client
        self.halt = threading.Event()
        self.shed: datetime | None = None
        self.accepted = 0
        self.failure: str | None = None

    def run(self) -> None:
        body = {"type": LOW, "payload": {}, "priority": 0}
        while not self.halt.is_set():
            answer = self.client.post("/v1/tasks", json=body)
            received = datetime.now(UTC)
            if answer.status_code == 503 and "Retry-After" in answer.headers:
                self.shed = received
                return
            if answer.status_code != 201:
                self.failure = f"{answer.status_code}: {answer.text[:200]}"
                return
            self.accepted += 1
            self.halt.wait(SUBMIT_EVERY_S)  # the client's pace, not a wait for an outcome


def bench_incidents(url: str, home: Path, trials: int) -> dict[str, Any]:
    hive = Hive(db_url=url, home=home, settings=QUIET).start()
    bots: list[Bot] = []
    try:
        with hive.client(hive.key("admin")) as admin, hive.client(hive.key("client")) as client:
            configure(admin)
            enrol = hive.key("bot")
            bots = [
                start_bot(hive, enrol, kind, "--capabilities", kind, "--exec", FAIL)
                for kind in TYPES
            ]
            wait_for(lambda: ready(admin) >= len(TYPES), timeout=60, what="the bots ready")
            measured = [trial(admin, client, n, n / trials) for n in range(trials)]
        return summarize(measured)
    finally:
        for bot in bots:
            bot.stop()
        hive.stop()


def configure(admin: httpx.Client) -> None:
    current = admin.get("/v1/config")
    current.raise_for_status()
    document = current.json()["document"]
    changes = {knob: {**document[knob], **values} for knob, values in CHANGES.items()}
    admin.patch(
        "/v1/config",
        json={"changes": changes, "reason": "bench: incidents that open and close in seconds"},
        headers={"If-Match": current.headers["ETag"]},
    ).raise_for_status()


def ready(admin: httpx.Client) -> int:
    items = admin.get("/v1/bots", params={"limit": 100}).json()["items"]
    return sum(1 for b in items if b["state"] == "ready" and b["name"] in TYPES)


def trial(admin: httpx.Client, client: httpx.Client, n: int, phase: float) -> Trial:
    """``phase``: the fraction of the detector's round to start late by (see ``stagger``)."""
    stagger(phase)
    shedder = Shedder(client)
    shedder.start()
    try:
        started = datetime.now(UTC)
        batch = [{"type": kind, "payload": {"trial": n}, "priority": 9} for kind in TYPES]
        admin.post("/v1/tasks/batch", json={"tasks": batch}).raise_for_status()
        incident = wait_for(
            lambda: open_cascade(admin), timeout=30, what=f"trial {n}'s cascade incident"
        )
        assert incident is not None  # wait_for returns only what is true
        degraded = wait_for(
            lambda: degraded_since(admin, incident["id"]), timeout=30, what="degraded mode"
        )
        wait_for(
            lambda: shedder.shed or shedder.failure,
            timeout=30,
            what="a low-priority submission shed",
            interval=0.005,
        )
        assert degraded is not None  # wait_for returns only what is true
    finally:
        shedder.halt.set()
        shedder.join(timeout=30)
    if shedder.failure is not None or shedder.shed is None:
        raise AssertionError(f"a low-priority submission answered {shedder.failure}")
    cited = sorted(incident["evidence"], key=lambda e: e["position"])
    at = [datetime.fromisoformat(e["at"]) for e in cited]
    if min(at) < started:
        raise AssertionError(f"trial {n}'s incident cites an earlier trial's event: {cited}")
    wait_for(lambda: over(admin, incident["id"]), timeout=60, what=f"trial {n} resolved and normal")
    return Trial(
        first_failure=min(at),
        first_event=cited[at.index(min(at))]["event"],
        tripped=max(at),
        opened=datetime.fromisoformat(incident["opened_at"]),
        degraded=degraded,
        shed=shedder.shed,
        accepted=shedder.accepted,
    )


def stagger(phase: float) -> None:
    """Start the trial ``phase`` of ``MIN_ROUND_S`` late. A trial begins when the last
    one's mode came down, a fixed time after one of the detector's rounds (its calm_s
    after the resolving round), so without this every trial would hit the same point of
    the detector's one-second pace; spread evenly over it, the trials sample that point as
    trouble does, which comes whenever it likes."""
    time.sleep(phase * MIN_ROUND_S)  # a chosen start, not a wait for an outcome


def open_cascade(admin: httpx.Client) -> dict[str, Any] | None:
    """The open cascade incident with its evidence as it opened (none but the trial's
    three failures can follow before this reads it: the trial has no more)."""
    listed = admin.get("/v1/incidents", params={"rule": "cascade", "state": "open"})
    items = listed.json()["items"]
    if not items:
        return None
    return admin.get(f"/v1/incidents/{items[0]['id']}").json()  # type: ignore[no-any-return]


def degraded_since(admin: httpx.Client, incident_id: str) -> datetime | None:
    mode = admin.get("/v1/mode").json()
    cites = {c["incident_id"] for c in mode["incidents"]}
    if mode["recorded"] != "degraded" or incident_id not in cites:
        return None
    return datetime.fromisoformat(mode["since"])


def over(admin: httpx.Client, incident_id: str) -> bool:
    state = admin.get(f"/v1/incidents/{incident_id}").json()["state"]
    return state == "resolved" and admin.get("/v1/mode").json()["recorded"] == "normal"


def seconds(trials: list[Trial], start: str, end: str) -> dict[str, float]:
    took = [(getattr(t, end) - getattr(t, start)).total_seconds() for t in trials]
    return {"p50": percentile(took, 50), "max": max(took)}


def summarize(trials: list[Trial]) -> dict[str, Any]:
    return {
        "trials": len(trials),
        "first_events": sorted({t.first_event for t in trials}),
        "detection": seconds(trials, "first_failure", "opened"),
        "spread": seconds(trials, "first_failure", "tripped"),
        "reaction": seconds(trials, "tripped", "opened"),
        "to_degraded": seconds(trials, "opened", "degraded"),
        "to_shed": seconds(trials, "degraded", "shed"),
        "opened_to_shed": seconds(trials, "opened", "shed"),
        "failure_to_shed": seconds(trials, "first_failure", "shed"),
        "accepted": [t.accepted for t in trials],
    }


def incidents_section(r: dict[str, Any], produced_by: str = "") -> str:
    """The section of docs/benchmarks.md (``produced_by``: a line saying how, when alone)."""

    def row(what: str, key: str) -> str:
        return f"| {what} | {r[key]['p50'] * 1000:,.0f} ms | {r[key]['max'] * 1000:,.0f} ms |"

    rows = "\n".join(
        [
            row("first failing event -> `Incident.Opened` (detection)", "detection"),
            row("of which: first failing event -> the third, which trips it", "spread"),
            row("of which: the tripping event -> `Incident.Opened`", "reaction"),
            row("`Incident.Opened` -> `HiveMode` enters `degraded`", "to_degraded"),
            row("`degraded` -> the first low-priority submission answered 503", "to_shed"),
            row("`Incident.Opened` -> shedding in effect (total)", "opened_to_shed"),
            row("first failing event -> shedding in effect", "failure_to_shed"),
        ]
    )
    window, calm = CHANGES["incidents"], CHANGES["degradation"]["calm_s"]
    pace = f"{SUBMIT_EVERY_S * 1000:.0f} ms"
    return f"""## Incidents and degradation

{produced_by}A real `apiary serve` and three `apiary bot` processes, one per task type,
each running `{FAIL}` (a task fails for good: no retries); {r["trials"]} trials. Each
trial submits one task of each type in one batch: three `Task.Failed` within milliseconds
on three bots and three types, the detector's `cascade`, which the default rules map to
`degraded`. Meanwhile a client key submits a priority-0 task every {pace} until one is
answered 503 with `Retry-After` (accepted before it, per trial: {r["accepted"]}). Between
trials the incident resolves and the mode returns to normal, each waited on, so each trial
opens a new episode (incidents `window_s` {window["window_s"]:g}, `quiet_s`
{window["quiet_s"]:g}; degradation `calm_s` {calm:g}; the breaker off). Trial n of N starts
n/N of the detector's pace late, so that the trials sample every point of it (else each
would start at the same one: `calm_s` after the round that resolved the last incident).
The first failing event each incident cited: {", ".join(r["first_events"])}.

| measured | p50 | max |
|---|---|---|
{rows}

Up to `degraded`: differences of the log's timestamps (the server's clock; `Opened`
carries the clock of the detector's round at its start). The 503: when this client
received it, on the wall clock of the same machine, submitting every {pace}. The
detector's pace is by design: news wakes its loop at most once every {MIN_ROUND_S:g} s
(`MIN_ROUND_S`, `runtime/incidents.py`), so a trip waits up to that long after the
previous round; the modes loop is told at once when an incident moves.
"""


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.incidents", description=__doc__)
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    from tests.bench.__main__ import machine  # the one description of the machine

    produced = (
        f"Produced by `python -m tests.bench.incidents --trials {args.trials}` (also run "
        f"by `make bench`) on {datetime.now(UTC):%Y-%m-%d}. Machine: {machine()}.\n"
    )
    return run_in_database(
        "incidents",
        lambda url, home: incidents_section(bench_incidents(url, home, args.trials), produced),
    )


if __name__ == "__main__":
    sys.exit(main())
