"""A bot's states: ready, draining, quarantined; and registrations recorded before pools."""

from __future__ import annotations

from uuid import uuid4

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from domain.bots import Bot, BotState
from domain.cause import Cause
from domain.errors import BotNotLive, InvalidInput, InvalidTransition
from domain.hive import Hive
from domain.launches import Launch, LaunchState

ADMIN = Cause("admin", "req-1")


def register(hive: Hive, **kw: object) -> Bot:
    bot, _, _ = hive.fleet.register(
        name="b1",
        capabilities=["code"],
        max_concurrency=2,
        version_label="v1",
        cause=ADMIN,
        **kw,  # type: ignore[arg-type]
    )
    return bot


def test_drain_is_final_for_new_work_and_repeating_it_records_nothing(hive: Hive) -> None:
    bot = register(hive)
    assert hive.fleet.drain([bot.id], "scale down", ADMIN).position is not None
    assert hive.fleet.drain([bot.id], "again", ADMIN).items == []
    drained = hive.get(Bot, bot.id)
    assert drained.state is BotState.DRAINING
    assert drained.is_live and not drained.accepts_work
    with pytest.raises(InvalidTransition):
        hive.fleet.quarantine(bot.id, "flaky", ADMIN)


def test_quarantine_then_reinstate(hive: Hive) -> None:
    bot = register(hive)
    hive.fleet.quarantine(bot.id, "fails every task", ADMIN)
    assert hive.get(Bot, bot.id).state is BotState.QUARANTINED
    hive.fleet.reinstate(bot.id, ADMIN)
    assert hive.get(Bot, bot.id).accepts_work
    with pytest.raises(InvalidTransition):
        hive.fleet.reinstate(bot.id, ADMIN)  # it is not quarantined any more


def test_a_lost_bot_cannot_be_drained_or_quarantined(hive: Hive) -> None:
    bot = register(hive)
    hive.fleet.mark_lost(bot.id, "silent", ADMIN)
    for change in (
        lambda: hive.fleet.drain([bot.id], "x", ADMIN),
        lambda: hive.fleet.quarantine(bot.id, "x", ADMIN),
    ):
        with pytest.raises(BotNotLive):
            change()


def test_a_draining_bot_can_still_be_lost(hive: Hive) -> None:
    bot = register(hive)
    hive.fleet.drain([bot.id], "scale down", ADMIN)
    hive.fleet.mark_lost(bot.id, "silent", ADMIN)
    assert hive.get(Bot, bot.id).state is BotState.LOST


def test_pool_and_launch_are_recorded_and_checked(hive: Hive) -> None:
    launch = hive.scaling.request_launches("coders", 1, "test", "backlog", ADMIN).items[0]
    bot = hive.get(Bot, register(hive, pool="coders", launch_id=launch.id).id)
    assert (bot.pool, bot.launch_id) == ("coders", launch.id)
    answered = hive.get(Launch, launch.id)
    assert (answered.state, answered.bot_id) == (LaunchState.REGISTERED, bot.id)
    with pytest.raises(InvalidInput):
        register(hive, pool="not a pool name!")
    with pytest.raises(InvalidInput, match="no launch"):
        register(hive, pool="coders", launch_id=uuid4())
    with pytest.raises(InvalidInput, match="is for pool coders"):
        register(hive, pool="writers", launch_id=launch.id)


def test_a_launch_closes_once_as_failed_before_registration_and_stopped_after(
    hive: Hive,
) -> None:
    never, answered = hive.scaling.request_launches("coders", 2, "test", "backlog", ADMIN).items
    bot = register(hive, pool="coders", launch_id=answered.id)
    hive.scaling.drain_launched_bots({bot.id: answered.id}, "scale down", ADMIN)
    assert hive.get(Launch, answered.id).state is LaunchState.STOPPING
    assert hive.get(Bot, bot.id).state is BotState.DRAINING
    hive.scaling.close_launches({never.id: 1, answered.id: 0}, "process exited", ADMIN)
    assert hive.get(Launch, never.id).state is LaunchState.FAILED
    assert hive.get(Launch, answered.id).state is LaunchState.STOPPED
    again = hive.scaling.close_launches({never.id: 1, answered.id: 0}, "process exited", ADMIN)
    assert again.items == []
    with pytest.raises(InvalidTransition):
        register(hive, pool="coders", launch_id=never.id)


def test_a_registration_recorded_before_pools_existed_still_loads(hive: Hive) -> None:
    """Version 1 of Bot.Registered had no pool and no launch id: the log is a contract."""
    bot_id = uuid4()
    v1_state = {
        "originator_id": str(bot_id),
        "originator_version": 1,
        "timestamp": "2026-11-01T00:00:00+00:00",
        "originator_topic": get_topic(Bot),
        "actor": "admin",
        "request_id": "old",
        "name": "veteran",
        "capabilities": ["code"],
        "max_concurrency": 1,
        "version_label": "v0",
    }
    stored = StoredEvent(
        originator_id=bot_id,
        originator_version=1,
        topic=get_topic(Bot.Registered),
        state=orjson.dumps(v1_state),
    )
    event = hive.mapper.to_domain_event(stored)
    bot = event.mutate(None)
    assert isinstance(bot, Bot)
    assert (bot.name, bot.pool, bot.launch_id, bot.state) == ("veteran", None, None, "ready")


def test_a_registration_recorded_before_bots_said_whether_they_take_messages_still_loads(
    hive: Hive,
) -> None:
    """Version 2 of Bot.Registered had no ``takes_messages``: every bot was a recipient of
    messages then, and the upcast keeps it so."""
    bot_id = uuid4()
    v2_state = {
        "originator_id": str(bot_id),
        "originator_version": 1,
        "timestamp": "2027-01-01T00:00:00+00:00",
        "originator_topic": get_topic(Bot),
        "actor": "admin",
        "request_id": "old",
        "name": "listener",
        "capabilities": ["chat"],
        "max_concurrency": 1,
        "version_label": "v0",
        "pool": None,
        "launch_id": None,
        "class_version": 2,
    }
    stored = StoredEvent(
        originator_id=bot_id,
        originator_version=1,
        topic=get_topic(Bot.Registered),
        state=orjson.dumps(v2_state),
    )
    event = hive.mapper.to_domain_event(stored)
    assert event.takes_messages is True
    bot = event.mutate(None)
    assert isinstance(bot, Bot) and bot.takes_messages is True
