"""The features tests' log checks find what they look for (a check that cannot fail proves
nothing): a message delivered to two recipients, again after its acknowledgement, or
before the message before it in its conversation."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from domain.cause import Cause
from domain.messages import Message
from tests.integration.log_checks import double_deliveries, out_of_order

ENGINE = Cause.engine("postman", "round-1")
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def sent(message_id: UUID) -> Message:
    return Message.send(
        message_id=message_id, to_bot=None, to_capability="listen", to_pool=None,
        conversation=None, seq=0, after=None, task_id=None, body="{}", ttl_s=60,
        cause=ENGINE, at=T0,
    )  # fmt: skip


def delivered_to(message: Message, bot_id: UUID) -> Message:
    message.route(bot_id, "capable", ENGINE, T0)
    message.deliver(bot_id, 30, ENGINE, T0)
    return message


def test_a_message_delivered_once_and_acknowledged_is_clean() -> None:
    a = uuid4()
    m = delivered_to(sent(uuid4()), a)
    m.acknowledge(a, 1, ENGINE, T0)
    assert double_deliveries(m.collect_events()) == []


def test_a_delivery_to_a_bot_it_was_not_routed_to_is_found() -> None:
    message_id, a, b = uuid4(), uuid4(), uuid4()
    first = delivered_to(sent(message_id), a).collect_events()
    second = delivered_to(sent(message_id), b).collect_events()  # the same message, to b
    found = double_deliveries([*first, second[-1]])
    assert found == [f"{message_id} delivered to {b}, routed elsewhere"]


def test_a_delivery_after_the_acknowledgement_is_found() -> None:
    message_id, a = uuid4(), uuid4()
    m = delivered_to(sent(message_id), a)
    m.acknowledge(a, 1, ENGINE, T0)
    again = delivered_to(sent(message_id), a).collect_events()
    found = double_deliveries([*m.collect_events(), again[-1]])
    assert found == [f"{message_id} delivered to {a} after its ack"]


def test_a_re_route_after_a_lost_bot_is_not_a_second_recipient() -> None:
    a, b = uuid4(), uuid4()
    m = delivered_to(sent(uuid4()), a)
    delivered_to(m, b)  # a was lost: capability-addressed, so re-routed to b
    assert double_deliveries(m.collect_events()) == []


def test_a_delivery_before_the_previous_message_of_its_conversation_is_found() -> None:
    a, first_id, second_id = uuid4(), uuid4(), uuid4()
    first = delivered_to(sent(first_id), a)
    second = Message.send(
        message_id=second_id, to_bot=None, to_capability="listen", to_pool=None,
        conversation="c", seq=2, after=first_id, task_id=None, body="{}", ttl_s=60,
        cause=ENGINE, at=T0,
    )  # fmt: skip
    delivered_to(second, a)
    early = [*first.collect_events(), *second.collect_events()]
    assert out_of_order(early) == [f"{second_id} delivered before {first_id} was done"]
    first.acknowledge(a, 1, ENGINE, T0)
    in_order = [*early[:3], *first.collect_events(), *early[3:]]
    assert out_of_order(in_order) == []
