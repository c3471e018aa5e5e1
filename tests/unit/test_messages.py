"""Messages on the in-memory recorder: sending, routing, delivery, acks, TTL and order."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.cause import Cause
from domain.errors import (
    InvalidInput,
    InvalidTransition,
    NotYourMessage,
    StaleDelivery,
    Undeliverable,
)
from domain.hive import Hive, MessageSpec
from domain.messages import Message, MessageState
from tests.clock import T0, FakeClock

ALICE = Cause("alice", "req-1")
ENGINE = Cause.engine("postman", "round-1")
ACKABLE = (MessageState.DELIVERED, MessageState.ACKNOWLEDGED)


def bot(hive: Hive, caps: list[str] | None = None) -> UUID:
    b, _, _ = hive.fleet.register(
        name="b", capabilities=caps or ["chat"], max_concurrency=1, version_label="v", cause=ALICE
    )
    return b.id


def send(hive: Hive, to: UUID, **kw: object) -> Message:
    return hive.messages.send(MessageSpec('{"hi":1}', to_bot=to, **kw), [to], ALICE).items[-1]  # type: ignore[arg-type]


def test_a_message_to_a_bot_is_routed_to_it_and_names_its_sender(hive: Hive) -> None:
    b = bot(hive)
    m = hive.get(Message, send(hive, b).id)
    assert (m.state, m.bot_id, m.sender, m.body) == (MessageState.ROUTED, b, "alice", '{"hi":1}')


def test_a_message_to_an_unknown_bot_is_refused(hive: Hive) -> None:
    with pytest.raises(Exception, match="no bot"):
        send(hive, uuid4())


def test_a_message_to_a_deregistered_bot_is_dead_at_once(hive: Hive) -> None:
    b = bot(hive)
    hive.fleet.deregister(b, ALICE)
    m = hive.get(Message, send(hive, b).id)
    assert m.state is MessageState.DEAD
    assert m.dead_reason == "undeliverable: the bot is deregistered"


def test_delivery_then_ack_and_a_stale_ack_is_refused(hive: Hive, clock: FakeClock) -> None:
    b = bot(hive)
    m = send(hive, b)
    assert [x.attempt for x in hive.messages.deliver(b, [m.id], 30, ENGINE).items] == [1]
    assert hive.messages.deliver(b, [m.id], 30, ENGINE).items == []  # in flight: not again
    clock.now += timedelta(seconds=31)  # not acknowledged in time: handed out again
    assert [x.attempt for x in hive.messages.deliver(b, [m.id], 30, ENGINE).items] == [2]
    with pytest.raises(StaleDelivery):
        hive.messages.acknowledge(b, {m.id: 1}, Cause(f"bot:{b}", "r"))
    with pytest.raises(NotYourMessage):
        hive.messages.acknowledge(uuid4(), {m.id: 2}, ALICE)
    hive.messages.acknowledge(b, {m.id: 2}, ALICE)
    hive.messages.acknowledge(b, {m.id: 2}, ALICE)  # a repeat changes nothing
    assert hive.get(Message, m.id).state is MessageState.ACKNOWLEDGED
    assert hive.messages.deliver(b, [m.id], 30, ENGINE).items == []


def test_ttl_passed_means_dead_letter_expired(hive: Hive, clock: FakeClock) -> None:
    b = bot(hive)
    m = send(hive, b, ttl_s=10)
    hive.messages.expire([m.id], ENGINE)
    assert hive.get(Message, m.id).state is MessageState.ROUTED  # not yet
    clock.now += timedelta(seconds=10)
    assert hive.messages.deliver(b, [m.id], 30, ENGINE).items == []
    hive.messages.expire([m.id], ENGINE)
    m = hive.get(Message, m.id)
    assert (m.state, m.dead_reason) == (MessageState.DEAD, "expired")


def test_conversation_order_next_waits_for_the_one_before(hive: Hive) -> None:
    b = bot(hive)
    first, second = send(hive, b, conversation="c1"), send(hive, b, conversation="c1")
    assert (first.seq, second.seq, second.after) == (1, 2, first.id)
    delivered = hive.messages.deliver(b, [second.id, first.id], 30, ENGINE).items
    assert [m.id for m in delivered] == [first.id]
    assert hive.messages.deliver(b, [second.id], 30, ENGINE).items == []
    hive.messages.acknowledge(b, {first.id: 1}, ALICE)
    assert [m.id for m in hive.messages.deliver(b, [second.id], 30, ENGINE).items] == [second.id]


def test_capability_message_waits_unrouted_then_is_routed_and_rerouted(hive: Hive) -> None:
    a, c = bot(hive), bot(hive)
    m = hive.messages.send(MessageSpec("1", to_capability="chat"), [], ALICE).items[0]
    assert hive.get(Message, m.id).state is MessageState.WAITING
    hive.messages.route({m.id: a}, "capability", ENGINE)
    hive.messages.deliver(a, [m.id], 30, ENGINE)
    hive.messages.route({m.id: c}, "rerouted: bot lost", ENGINE)
    with pytest.raises(StaleDelivery):  # the lost bot's late ack: its delivery is stale
        hive.messages.acknowledge(c, {m.id: 0}, ALICE)
    assert [x.attempt for x in hive.messages.deliver(c, [m.id], 30, ENGINE).items] == [2]


def test_a_bot_addressed_message_is_never_rerouted(hive: Hive) -> None:
    a, c = bot(hive), bot(hive)
    m = send(hive, a)
    with pytest.raises(Exception, match="only a message sent to a capability"):
        hive.messages.route({m.id: c}, "x", ENGINE)


def test_pool_fan_out_one_copy_per_bot_and_none_is_undeliverable(hive: Hive) -> None:
    a, c = bot(hive), bot(hive)
    sent = hive.messages.send(MessageSpec("1", to_pool="p", conversation="c"), [a, c], ALICE)
    messages = sent.items
    assert sorted(m.bot_id for m in messages if m.bot_id) == sorted([a, c])
    assert {m.seq for m in messages} == {1}  # each bot's own order
    with pytest.raises(Undeliverable):
        hive.messages.send(MessageSpec("1", to_pool="p"), [], ALICE)


def test_a_pool_copy_to_a_deregistered_bot_is_dead_at_once(hive: Hive) -> None:
    a, c = bot(hive), bot(hive)
    hive.fleet.deregister(c, ALICE)  # the postman's live index has not heard of it yet
    sent = hive.messages.send(MessageSpec("1", to_pool="p"), [a, c], ALICE).items
    assert {m.to_bot: (m.state, m.bot_id, m.dead_reason) for m in sent} == {
        a: (MessageState.ROUTED, a, None),
        c: (MessageState.DEAD, None, "undeliverable: the bot is deregistered"),
    }


@pytest.mark.parametrize(
    "spec",
    [
        MessageSpec("1"),
        MessageSpec("1", to_bot=uuid4(), to_capability="chat"),
        MessageSpec("1", to_capability="Bad Name"),
        MessageSpec("1", to_capability="chat", ttl_s=0),
        MessageSpec("1", to_capability="chat", conversation="No Spaces"),
        MessageSpec('"\\u0000"', to_capability="chat"),
    ],
)
def test_bad_messages_are_refused(hive: Hive, spec: MessageSpec) -> None:
    with pytest.raises(InvalidInput):
        hive.messages.send(spec, [], ALICE)


@given(st.lists(st.sampled_from(["deliver", "wait", "ack-old", "ack", "reroute"]), max_size=25))
def test_never_with_two_recipients_and_only_the_latest_attempt_acks(ops: list[str]) -> None:
    clock = FakeClock(T0)
    hive = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock)
    bots = [bot(hive), bot(hive)]
    m = hive.messages.send(MessageSpec("1", to_capability="chat"), [bots[0]], ALICE).items[0]
    handed: list[tuple[UUID, int]] = []
    for op in ops:
        now = hive.get(Message, m.id)
        if op == "deliver" and now.bot_id is not None:
            for d in hive.messages.deliver(now.bot_id, [m.id], 5, ENGINE).items:
                handed.append((now.bot_id, d.attempt))
        elif op == "wait":
            clock.now += timedelta(seconds=3)
        elif op == "reroute" and not now.state.is_final:
            other = bots[1] if now.bot_id == bots[0] else bots[0]
            hive.messages.route({m.id: other}, "rerouted", ENGINE)
        elif op in ("ack", "ack-old") and handed:
            holder, attempt = handed[-1] if op == "ack" else handed[0]
            latest = (holder, attempt) == handed[-1] and now.bot_id == holder
            try:
                hive.messages.acknowledge(holder, {m.id: attempt}, ALICE)
                assert latest  # only the latest hand-out, to the current recipient, acks
            except (StaleDelivery, NotYourMessage, InvalidTransition):
                assert not latest or now.state not in ACKABLE
        after = hive.get(Message, m.id)
        replayed = hive.log.repository.get(m.id)  # from the log alone, not the cache
        assert vars(replayed) == vars(after) | {"_pending_events": []}
        attempts = [a for _, a in handed]
        assert attempts == sorted(set(attempts))  # each hand-out a new, larger attempt
        if after.state is MessageState.DELIVERED:  # in flight with exactly one bot
            assert handed[-1] == (after.bot_id, after.attempt)
