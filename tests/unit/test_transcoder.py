"""The log's transcoder (``store/transcoder.py``) against the library's: the library reads
what it writes as the same values, and it refuses what the library refuses, whatever the
value (Hypothesis); the events the hive writes are the same bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoder,
    UUIDAsHex,
)
from eventsourcing.utils import resolve_topic
from hypothesis import given, settings
from hypothesis import strategies as st

from api.bootstrap import hive_env
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive, TaskSpec
from domain.policies.routing import Assignment
from store.transcoder import FastJSONTranscoder


def registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


LIBRARY, FAST = registered(JSONTranscoder()), registered(FastJSONTranscoder())

zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), None])
leaves = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats()  # NaN and infinities too
    | st.text(st.characters(codec=None))  # lone surrogates too
    | st.uuids()
    | st.datetimes(timezones=zones)
    | st.decimals(allow_nan=False)
    | st.sampled_from(["_type_", "_data_", "uuid_hex", "12345678901234567890"])
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["_type_", "_data_"]), inner, max_size=4
        )
        | st.dictionaries(st.integers(), inner, max_size=2)
    ),  # keys json turns into strings
    max_leaves=12,
)


def outcome(transcoder: Transcoder, value: Any, reader: Transcoder) -> tuple[str, bytes]:
    """What writing ``value`` with ``transcoder`` and reading it with ``reader`` gives, as
    the library writes it again (so NaN compares equal), or the error's type."""
    try:
        return "ok", LIBRARY.encode(reader.decode(transcoder.encode(value)))
    except Exception as e:
        return type(e).__name__, b""


@settings(max_examples=400, deadline=None)
@given(values)
def test_the_library_reads_what_it_writes_as_the_same_values(value: Any) -> None:
    assert outcome(FAST, value, LIBRARY) == outcome(LIBRARY, value, LIBRARY)


def test_the_events_a_hive_writes_are_the_same_bytes_either_way() -> None:
    hive = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    cause = Cause("alice", "r")
    bot, _, _ = hive.fleet.register(
        name="b", capabilities=["code"], max_concurrency=2, version_label="v1", cause=cause
    )
    task = hive.tasks.submit([TaskSpec("code", payload='{"x": [1, "é"]}')], cause).items[0].task
    why = {"policy": "adaptive-1", "bots": [{"bot": str(bot.id), "score": 0.75, "free": 2}]}
    committed = hive.tasks.assign([Assignment(task.id, bot.id, why)], cause)
    events = [e for _, e in committed.recorded]
    for event in [*hive.kernel.history(task.id), *events, *hive.kernel.history(bot.id)]:
        state = {k: v for k, v in vars(event).items()}
        assert FAST.encode(state) == LIBRARY.encode(state)


def test_the_hive_records_with_it() -> None:
    env = hive_env("postgresql://u@h/db", Settings())
    assert resolve_topic(env["TRANSCODER_TOPIC"]) is FastJSONTranscoder


def test_a_stamp_round_trips_with_its_offset() -> None:
    at = datetime(2026, 12, 7, 13, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-3)))
    state = {"at": at, "id": UUID(int=7), "d": Decimal("1.10")}
    assert FAST.decode(FAST.encode(state)) == state
