"""The mailbox answers the postman as a scan of every open message would: which expired
(soonest first), which need a recipient (oldest first), when to look next; while finished
messages leave its expiry heap lazily and the heap is compacted when they pile up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.cause import Cause
from domain.messages import Message
from runtime.mailbox import Mailbox

ENGINE = Cause.engine("postman", "round")
T0 = datetime(2030, 1, 1, tzinfo=UTC)
BOTS = [UUID(int=i) for i in range(1, 4)]

step = st.one_of(
    st.tuples(st.just("send"), st.booleans(), st.integers(1, 50)),  # to a capability?, ttl
    st.tuples(st.just("route"), st.integers(0, 30), st.sampled_from(BOTS)),
    st.tuples(st.just("deliver"), st.integers(0, 30)),
    st.tuples(st.just("finish"), st.integers(0, 30), st.booleans()),  # acked (else dead)
    st.tuples(st.just("wait"), st.integers(1, 20)),
)


class Feed:
    """Messages changed by their own commands, each event handed to the mailbox."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.messages: dict[UUID, Message] = {}
        self.seq: dict[UUID, int] = {}
        self.position = 0
        self.now = T0

    def send(self, to_capability: bool, ttl_s: int) -> None:
        message_id = uuid4()
        m = Message.send(
            message_id=message_id, to_bot=None if to_capability else BOTS[0],
            to_capability="chat" if to_capability else None, to_pool=None, conversation=None,
            seq=0, after=None, task_id=None, body="{}", ttl_s=ttl_s, cause=ENGINE, at=self.now,
        )  # fmt: skip
        self.messages[message_id] = m
        self.seq[message_id] = self.position + 1
        if not to_capability:
            m.route(BOTS[0], "addressed", ENGINE, self.now)
        self.flush(m)

    def open(self) -> list[Message]:
        return [m for m in self.messages.values() if not m.state.is_final]

    def pick(self, n: int) -> Message | None:
        found = self.open()
        return found[n % len(found)] if found else None

    def flush(self, m: Message) -> None:
        events = []
        for e in m.collect_events():
            self.position += 1
            events.append((self.position, e))
        self.mailbox.apply(events)

    def do(self, move: tuple[Any, ...]) -> None:
        kind, *args = move
        if kind == "send":
            self.send(*args)
        elif kind == "wait":
            self.now += timedelta(seconds=args[0])
        elif (m := self.pick(args[0])) is not None:
            if kind == "route" and (m.to_capability is not None or m.bot_id is None):
                m.route(args[1], "capable", ENGINE, self.now)
            elif kind == "deliver" and m.bot_id is not None and m.deliverable(m.bot_id, self.now):
                m.deliver(m.bot_id, 5, ENGINE, self.now)
            elif kind == "finish":
                if args[1] and m.state.value == "delivered":
                    m.acknowledge(m.bot_id, m.attempt, ENGINE, self.now)  # type: ignore[arg-type]
                elif not args[1]:
                    m.dead_letter("given up", ENGINE, self.now)
            self.flush(m)


@settings(max_examples=150, deadline=None)
@given(moves=st.lists(step, max_size=60), live=st.sets(st.sampled_from(BOTS)))
def test_the_postmans_questions_answer_as_a_scan_would(moves: list[Any], live: set[UUID]) -> None:
    feed = Feed(Mailbox(compact_slack=2))  # compacted often, to be checked too
    for move in moves:
        feed.do(move)
        open_ = feed.open()
        expired = sorted(
            (m for m in open_ if m.expires_at <= feed.now),
            key=lambda m: (m.expires_at, feed.seq[m.id]),
        )
        assert feed.mailbox.expired(feed.now, 5) == [m.id for m in expired[:5]]
        stranded = sorted(
            (m for m in open_ if m.to_capability and (m.bot_id is None or m.bot_id not in live)),
            key=lambda m: feed.seq[m.id],
        )
        assert feed.mailbox.to_route(live, 5) == [(m.id, "chat") for m in stranded[:5]]
        soonest = min((m.expires_at for m in open_), default=None)
        assert feed.mailbox.next_wake() == soonest
        assert len(feed.mailbox.expiries) <= 2 * len(open_) + 3


def test_finished_messages_leave_the_expiry_heap() -> None:
    feed = Feed(Mailbox(compact_slack=100))
    for _ in range(3000):
        feed.send(True, 3600)
        m = feed.open()[-1]
        m.route(BOTS[1], "capable", ENGINE, feed.now)
        m.dead_letter("given up", ENGINE, feed.now)
        feed.flush(m)
    assert feed.mailbox.mail == {}
    assert len(feed.mailbox.expiries) <= 101
    assert feed.mailbox.next_wake() is None
