"""Messaging on real PostgreSQL: routing, lost bots, redelivery, TTL and conversation order,
by a Node on an injected clock (time moves by hand, nothing sleeps through it)."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Node
from api.settings import Settings
from domain.cause import Cause
from domain.errors import StaleDelivery, Undeliverable
from domain.hive import MessageSpec, TaskSpec
from domain.keys import Role
from domain.messages import Message, MessageState
from projections.message_reads import MessageReads
from tests.clock import FakeClock
from tests.integration.helpers import StartNode
from tests.waiting import wait_for

ALICE = Cause("alice", "req")
VISIBILITY_S = 30.0


@pytest.fixture
def node(start_node: StartNode) -> Node:
    return start_node(message_visibility_s=VISIBILITY_S)


def register(node: Node, caps: list[str]) -> UUID:
    bot, _, _ = node.hive.fleet.register(
        name="b", capabilities=caps, max_concurrency=1, version_label="v1", cause=ALICE
    )
    node.liveness.renew(bot.id, 600)
    return bot.id


def claim(node: Node, bot_id: UUID, wait: float = 0.0) -> list[tuple[UUID, int]]:
    got = asyncio.run(node.messages.claim(bot_id, 10, wait, Cause(f"bot:{bot_id}", "claim")))
    return [(m.id, m.attempt) for m in got]


def send(node: Node, **spec: object) -> UUID:
    return node.postman.send(MessageSpec("{}", **spec), ALICE).items[0].id  # type: ignore[arg-type]


def state(node: Node, message_id: UUID) -> Message:
    return node.hive.get(Message, message_id)


def test_capability_routing_picks_the_capable_bot_with_the_fewest(node: Node) -> None:
    other = register(node, ["code"])
    first, second = register(node, ["chat"]), register(node, ["chat", "code"])
    sent = [send(node, to_capability="chat") for _ in range(4)]
    recipients = [state(node, m).bot_id for m in sent]
    assert other not in recipients
    assert sorted(recipients, key=str) == sorted([first, first, second, second], key=str)
    assert {m for m, _ in claim(node, first)} | {m for m, _ in claim(node, second)} == set(sent)


def test_to_a_lost_bot_held_until_its_ttl_then_expired(node: Node, clock: FakeClock) -> None:
    gone, spare = register(node, ["chat"]), register(node, ["chat"])
    message = send(node, to_bot=gone, ttl_s=60)
    node.hive.fleet.mark_lost(gone, "test", ALICE)
    clock.advance(timedelta(seconds=59))
    node.postman.run_once()
    assert state(node, message).bot_id == gone and claim(node, spare) == []
    clock.advance(timedelta(seconds=1))
    wait_for(lambda: state(node, message).state is MessageState.DEAD, what="expiry")
    assert state(node, message).dead_reason == "expired"


def test_to_a_capability_rerouted_from_a_lost_bot(node: Node) -> None:
    first = register(node, ["chat"])
    message = send(node, to_capability="chat")
    assert claim(node, first) == [(message, 1)]
    second = register(node, ["chat"])
    node.hive.fleet.mark_lost(first, "test", ALICE)
    wait_for(lambda: state(node, message).bot_id == second, what="re-routing")
    assert claim(node, second, wait=5) == [(message, 2)]
    with pytest.raises(StaleDelivery):
        node.hive.messages.acknowledge(second, {message: 1}, ALICE)
    node.hive.messages.acknowledge(second, {message: 2}, ALICE)


def test_redelivered_after_the_visibility_timeout(node: Node, clock: FakeClock) -> None:
    bot = register(node, ["chat"])
    message = send(node, to_bot=bot)
    assert claim(node, bot) == [(message, 1)]
    assert claim(node, bot) == []
    clock.advance(timedelta(seconds=VISIBILITY_S))
    assert claim(node, bot) == [(message, 2)]


def test_a_conversation_is_delivered_in_order(node: Node, db_url: str) -> None:
    bot = register(node, ["chat"])
    first, second = (send(node, to_bot=bot, conversation="c1") for _ in range(2))
    assert claim(node, bot) == [(first, 1)]
    assert claim(node, bot, wait=0.3) == []  # the second waits for the first
    waiting = threading.Thread(target=lambda: result.extend(claim(node, bot, wait=10)))
    result: list[tuple[UUID, int]] = []
    waiting.start()
    node.hive.messages.acknowledge(bot, {first: 1}, ALICE)
    waiting.join(timeout=10)
    assert result == [(second, 1)]  # woken by the ack, not by the timeout
    reads = MessageReads(node.pool)
    rows = wait_for(
        lambda: len(reads.conversation("c1", limit=1, cursor=None)[0]) == 1 and reads,
        what="the view",
    )
    page, cursor = rows.conversation("c1", limit=1, cursor=None)
    rest, _ = rows.conversation("c1", limit=5, cursor=cursor)
    assert [r.message_id for r in page + rest] == [first, second]


def test_a_bot_lists_only_its_own_messages_of_a_conversation(node: Node) -> None:
    """Found by outside testing: bot A read bot B's message bodies through the list of a
    conversation, while reading one by its id already gave it 404."""
    a, b = register(node, ["chat"]), register(node, ["chat"])
    to_a, to_b = send(node, to_bot=a, conversation="ops"), send(node, to_bot=b, conversation="ops")
    as_a = Cause(f"bot:{a}", "r")
    from_a = node.postman.send(MessageSpec("{}", to_bot=b, conversation="ops"), as_a).items[0].id
    reads = MessageReads(node.pool)
    wait_for(lambda: len(reads.conversation("ops", limit=10, cursor=None)[0]) == 3, what="view")

    def listed(bot: UUID | None) -> list[UUID]:
        return [r.message_id for r in reads.conversation("ops", limit=10, cursor=None, bot=bot)[0]]

    assert listed(a) == [to_a, from_a]  # to it, and from it
    assert listed(b) == [to_b, from_a]
    assert listed(None) == [to_a, to_b, from_a]  # a client or an admin sees them all


def test_the_latest_messages_of_all_newest_first_a_bot_sees_only_its_own(node: Node) -> None:
    """Found by outside testing: `apiary message list` demanded a conversation; the API
    now lists the latest messages without one (paged, newest first), by the same rules."""
    a, b = register(node, ["chat"]), register(node, ["chat"])
    first = send(node, to_bot=a)
    second = send(node, to_bot=b, conversation="ops")
    third = node.postman.send(MessageSpec("{}", to_bot=b), Cause(f"bot:{a}", "r")).items[0].id
    reads = MessageReads(node.pool)
    wait_for(lambda: len(reads.latest(limit=10, cursor=None)[0]) == 3, what="the view")

    page, cursor = reads.latest(limit=2, cursor=None)
    rest, end = reads.latest(limit=2, cursor=cursor)
    assert [r.message_id for r in page + rest] == [third, second, first] and end is None
    assert [r.message_id for r in reads.latest(limit=10, cursor=None, bot=a)[0]] == [third, first]

    client = node.hive.keys.issue("alice", Role.CLIENT, ALICE).token
    with TestClient(create_app(node.container())) as api:
        api.headers["Authorization"] = f"Bearer {client}"
        listed = api.get("/v1/messages", params={"limit": 2})
        assert listed.status_code == 200, listed.text
        assert [m["id"] for m in listed.json()["items"]] == [str(third), str(second)]
        more = api.get("/v1/messages", params={"cursor": listed.json()["next_cursor"]}).json()
        assert [m["id"] for m in more["items"]] == [str(first)]
        in_ops = api.get("/v1/messages", params={"conversation": "ops"}).json()
        assert [m["id"] for m in in_ops["items"]] == [str(second)]
        for bad in ({"conversations": "ops"}, {"cursor": "s1"}, {"conversation": "Not Ok"}):
            assert api.get("/v1/messages", params=bad).status_code == 422, bad


def test_pool_fan_out_reaches_each_live_bot_of_the_pool(node: Node) -> None:
    bots = []
    for _ in range(2):
        b, _, _ = node.hive.fleet.register(
            name="p",
            capabilities=["x"],
            max_concurrency=1,
            version_label="v",
            cause=ALICE,
            pool="workers",
        )
        bots.append(b.id)
    sent = node.postman.send(MessageSpec('{"all": true}', to_pool="workers"), ALICE).items
    assert sorted((m.bot_id for m in sent), key=str) == sorted(bots, key=str)
    for b in bots:
        assert len(claim(node, b)) == 1


def test_a_restarted_node_knows_the_undelivered_messages(node: Node, start_node: StartNode) -> None:
    bot = register(node, ["chat"])
    message = send(node, to_bot=bot)
    wait_for(lambda: node.runners and all(r.healthy.is_set() for r in node.runners), what="views")
    node.stop()
    again = start_node()
    try:
        assert claim(again, bot) == [(message, 1)]
    finally:
        again.stop()


def test_to_a_capability_nobody_has_yet_waits_then_is_routed_or_expires(
    node: Node, clock: FakeClock
) -> None:
    waiting = send(node, to_capability="rare", ttl_s=60)
    never = send(node, to_capability="none", ttl_s=60)
    assert state(node, waiting).state is MessageState.WAITING
    bot = register(node, ["rare"])
    wait_for(lambda: state(node, waiting).bot_id == bot, what="routing to the newcomer")
    assert claim(node, bot, wait=5) == [(waiting, 1)]
    clock.advance(timedelta(seconds=60))
    wait_for(lambda: state(node, never).state is MessageState.DEAD, what="expiry")
    assert state(node, never).dead_reason == "undeliverable: no bot took it"


def test_the_postman_rests_until_mail_or_the_fleet_moves(node: Node) -> None:
    """Each round clears its wake-up; task traffic is no news for it (it used to go round
    and round, a leadership check each time, from the first bot on)."""
    bot = register(node, ["chat"])
    wait_for(lambda: not node.postman.wake.is_set(), what="the postman's round after a bot came")
    node.hive.tasks.submit([TaskSpec("chat")] * 5, ALICE)
    wait_for(lambda: len(node.index.held_by(bot)) == 1, what="a task assigned to the bot")
    assert not node.postman.wake.is_set()
    message = send(node, to_capability="chat")
    assert state(node, message).bot_id == bot
    wait_for(lambda: not node.postman.wake.is_set(), what="the postman's round after the mail")


def test_message_counts_equal_a_group_by_over_the_view_and_after_a_rebuild(
    node: Node, db_url: str, clock: FakeClock
) -> None:
    import psycopg

    from api.bootstrap import rebuild_views

    bot = register(node, ["chat"])
    for _ in range(3):
        send(node, to_bot=bot)
    handed = claim(node, bot)
    node.hive.messages.acknowledge(bot, {m: attempt for m, attempt in handed[:2]}, ALICE)
    send(node, to_capability="nobody", ttl_s=1)  # waits, then dead
    send(node, to_bot=bot)  # routed, never claimed
    clock.advance(timedelta(seconds=2))
    node.postman.run_once()
    counted = "SELECT state, n FROM message_counts ORDER BY 1"
    grouped = "SELECT state, count(*) FROM messages_view GROUP BY 1 ORDER BY 1"
    want = [("acknowledged", 2), ("dead", 1), ("delivered", 1), ("routed", 1)]

    def counts() -> tuple[list[tuple[str, int]], ...] | None:
        with psycopg.connect(db_url) as conn:  # both from one snapshot of the view
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            found = (conn.execute(counted).fetchall(), conn.execute(grouped).fetchall())
        return found if found[1] == want else None

    settled = wait_for(counts, what="the messages view at the end of the log")
    assert settled[0] == settled[1] == want
    rebuild_views(db_url, Settings(), "messages")
    assert counts() == settled


def register_deaf(node: Node, caps: list[str], pool: str | None = None) -> UUID:
    """A bot that does not take messages (``apiary bot`` without ``--messages``)."""
    bot, _, _ = node.hive.fleet.register(
        name="deaf",
        capabilities=caps,
        max_concurrency=1,
        version_label="v1",
        cause=ALICE,
        pool=pool,
        takes_messages=False,
    )
    node.liveness.renew(bot.id, 600)
    return bot.id


def test_a_capability_message_goes_only_to_a_bot_that_takes_messages(
    node: Node, start_node: StartNode
) -> None:
    """Issue 11, finding 10: it used to reach a bot that never reads, and sit there."""
    deaf, reader = register_deaf(node, ["chat"]), register(node, ["chat"])
    sent = [send(node, to_capability="chat") for _ in range(3)]
    assert [state(node, m).bot_id for m in sent] == [reader] * 3
    wait_for(lambda: node.runners and all(r.healthy.is_set() for r in node.runners), what="views")
    node.stop()
    again = start_node()  # its live index starts from the fleet view: the flag is kept there
    try:
        assert deaf in again.index.live_bots()  # and it has the fewest messages, by far
        assert state(again, send(again, to_capability="chat")).bot_id == reader
    finally:
        again.stop()


def test_a_capability_only_deaf_bots_have_waits_like_one_nobody_has(
    node: Node, clock: FakeClock
) -> None:
    register_deaf(node, ["rare"])
    waiting = send(node, to_capability="rare", ttl_s=60)
    assert state(node, waiting).state is MessageState.WAITING
    reader = register(node, ["rare"])
    wait_for(lambda: state(node, waiting).bot_id == reader, what="routing to the reader")
    register_deaf(node, ["lonely"])
    never = send(node, to_capability="lonely", ttl_s=60)
    clock.advance(timedelta(seconds=60))
    wait_for(lambda: state(node, never).state is MessageState.DEAD, what="expiry")
    assert state(node, never).dead_reason == "undeliverable: no bot took it"


def test_a_message_to_a_bot_that_does_not_take_messages_is_refused(node: Node) -> None:
    deaf = register_deaf(node, ["chat"])
    with pytest.raises(Undeliverable, match="does not take messages"):
        send(node, to_bot=deaf)


def test_a_pool_fans_out_only_to_its_bots_that_take_messages(node: Node) -> None:
    register_deaf(node, ["x"], pool="quiet")
    with pytest.raises(Undeliverable, match="no live bot that takes messages"):
        send(node, to_pool="quiet")
    deaf = register_deaf(node, ["x"], pool="mixed")
    reader, _, _ = node.hive.fleet.register(
        name="r",
        capabilities=["x"],
        max_concurrency=1,
        version_label="v",
        cause=ALICE,
        pool="mixed",
    )
    sent = node.postman.send(MessageSpec("{}", to_pool="mixed"), ALICE).items
    assert [m.bot_id for m in sent] == [reader.id]
    assert claim(node, deaf) == []
