"""Encoding the hive's events: the library's JSONTranscoder against the log's own
(``store/transcoder.py``), on the events of a task's life as the hive records them.

    python -m tests.bench.transcoder

Prints microseconds per event (the best of several repeats: this machine is shared) and
the ratio. Both write the same bytes for these events (``tests/unit/test_transcoder.py``).
"""

from __future__ import annotations

import timeit
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoder

from domain.cause import Cause
from domain.hive import Hive, Report, TaskSpec
from domain.policies.routing import BotSlots, PendingTask, route
from store.transcoder import FastJSONTranscoder

REPEATS, NUMBER = 9, 2000


def events() -> list[dict[str, Any]]:
    """The states of a drain's events: registration, submission, assignment (with the
    routing explanation a round gives it), success with ``ran_s``."""
    hive = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    cause = Cause("bench", "r")
    bots = [
        hive.fleet.register(
            name=f"b{i}",
            capabilities=["noop"],
            max_concurrency=256,
            version_label="v1",
            cause=cause,
        )[0]
        for i in range(2)
    ]
    task = hive.tasks.submit([TaskSpec("noop", payload='{"n": 1}')], cause).items[0].task
    slots = [BotSlots(b.id, frozenset(["noop"]), 256) for b in bots]
    waiting = PendingTask(task.id, 5, 1, frozenset(["noop"]), "noop")
    (assignment,) = route([waiting], slots, {}, 0)
    hive.tasks.assign([assignment], cause)
    report = Report(task.id, 1, result="{}", ran_s=0.0001)
    hive.tasks.finish(assignment.bot_id, [report], cause)
    recorded = [*hive.kernel.history(task.id), *hive.kernel.history(assignment.bot_id)]
    return [dict(vars(e)) for e in recorded]


def per_event_us(transcoder: Transcoder, states: list[dict[str, Any]]) -> float:
    def run() -> None:
        for state in states:
            transcoder.encode(state)

    return min(timeit.repeat(run, number=NUMBER, repeat=REPEATS)) / NUMBER / len(states) * 1e6


def main() -> None:
    states = events()
    mapper = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
    library = mapper.transcoder
    assert isinstance(library, JSONTranscoder)
    ours = FastJSONTranscoder()
    for transcoding in library.types.values():
        ours.register(transcoding)
    base, fast = per_event_us(library, states), per_event_us(ours, states)
    print(f"events: {len(states)} kinds, {sum(len(library.encode(s)) for s in states)} bytes")
    print(f"encode per event: library {base:.2f} us, ours {fast:.2f} us, ratio {fast / base:.2f}")


if __name__ == "__main__":
    main()
