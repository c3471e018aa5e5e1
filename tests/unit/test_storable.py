"""``projections/storable.py``: text a view cannot store, made storable, and only that."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from projections.storable import storable, storable_event, storable_text
from tests.unchecked import unchecked_task


def test_a_nul_and_a_json_escape_of_one_become_the_replacement_character() -> None:
    assert storable_text("a\x00b") == "a\ufffdb"
    assert storable_text('{"k": "a\\u0000b"}') == '{"k": "a\\ufffdb"}'
    assert storable_text('"\\\\u0000"') == '"\\\\u0000"'  # an escaped backslash: text
    assert storable_text('"\\\\\\u0000"') == '"\\\\\\ufffd"'  # then an escaped NUL
    assert storable_text("x\ud800y") == "x?y"
    assert storable_text("plain é text") == "plain é text"


def test_every_text_at_any_depth_keys_too() -> None:
    value = {"a\x00": ["b\x00", ("c\x00",)], "n": 1, "none": None}
    assert storable(value) == {"a\ufffd": ["b\ufffd", ("c\ufffd",)], "n": 1, "none": None}


def test_an_event_copy_is_made_storable_and_the_event_is_left_as_it_was() -> None:
    task = unchecked_task(datetime(2030, 1, 1, tzinfo=UTC), payload="{}", idempotency_key="k\x00")
    event: Any = task.collect_events()[0]
    twin = storable_event(event)
    assert twin.idempotency_key == "k\ufffd" and event.idempotency_key == "k\x00"
    assert (twin.originator_id, twin.timestamp, twin.type) == (
        event.originator_id,
        event.timestamp,
        event.type,
    )
