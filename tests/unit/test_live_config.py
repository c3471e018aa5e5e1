"""A process's copy of the config in force (``LiveConfig``), fed the events an in-memory
hive records: versions apply in order and once, and a part hears every version it takes.
Filling from the config view is tested on PostgreSQL (tests/integration/test_config_live.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from domain.cause import Cause
from domain.hive import Hive
from runtime.config import Knobs
from runtime.live_config import LiveConfig

OPERATOR = Cause("operator", "req")


def versions(hive: Hive, *max_batches: int) -> list[tuple[int, Any]]:
    """The config seeded, then changed to each ``max_batch``: the events, as recorded."""
    recorded = list(hive.config.seed(Knobs().document(), "seed", OPERATOR).recorded)
    for version, max_batch in enumerate(max_batches, start=1):
        document = Knobs(max_batch=max_batch).document()
        recorded += hive.config.change(document, version, "tuning", OPERATOR).recorded
    return recorded


def test_versions_apply_in_order_and_each_part_hears_each_once(hive: Hive) -> None:
    live = LiveConfig(Knobs(max_batch=7))
    heard: list[int] = []
    live.on_change(lambda knobs: heard.append(knobs.max_batch))
    assert (live.version, heard) == (0, [7])  # before any version: the process's own knobs
    events = versions(hive, 10, 20)
    live.apply(events)
    live.apply(events)  # heard again (the feed after the process's own write): no change
    assert (live.version, live.knobs.max_batch) == (3, 20)
    assert heard == [7, 1000, 10, 20]


def test_a_version_that_does_not_follow_on_waits_for_the_one_before(hive: Hive) -> None:
    live = LiveConfig(Knobs())
    seeded, second, third = versions(hive, 10, 20)
    live.apply([seeded, third])
    assert (live.version, live.knobs.max_batch) == (1, 1000)
    live.apply([second, third])
    assert (live.version, live.knobs.max_batch) == (3, 20)


def test_a_document_this_release_cannot_read_keeps_the_knobs_in_force(
    hive: Hive, caplog: pytest.LogCaptureFixture
) -> None:
    live = LiveConfig(Knobs())
    heard: list[int] = []
    live.on_change(lambda knobs: heard.append(knobs.max_batch))
    recorded = versions(hive, 10)
    newer = json.dumps({**Knobs(max_batch=30).model_dump(mode="json"), "a_newer_knob": 1})
    recorded += hive.config.change(newer, 2, "a newer release", OPERATOR).recorded
    recorded += hive.config.change(Knobs(max_batch=40).document(), 3, "back", OPERATOR).recorded
    live.apply(recorded[:3])
    assert (live.version, live.knobs.max_batch) == (3, 10)
    assert any(r.getMessage().startswith("config version not understood") for r in caplog.records)
    live.apply(recorded[3:])
    assert (live.version, live.knobs.max_batch) == (4, 40)
    assert heard == [1000, 1000, 10, 40]
