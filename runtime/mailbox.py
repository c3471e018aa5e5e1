"""The mailbox: the messages not yet acknowledged or dead, per recipient, in memory.

Like the launch book, it starts from a snapshot of its view (the messages view) and then
hears every Message event (the live feed's observers and the Hive's own writes), each
applied once, in version order. The claim long-poll asks it which messages a bot may be
handed now, and the postman which have expired or need a (new) recipient; the Hive's
commands decide again from the log, so a mailbox that is behind only costs a wasted try.
It rings ``listeners`` with the bots that have news: a message routed to them, or the
message before one of theirs in a conversation finished.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from domain.aggregate import event_topics
from domain.messages import Message

TOPICS = event_topics(Message)


@dataclass
class Mail:
    message_id: UUID
    seq: int  # log position of its sending: oldest first
    to_capability: str | None
    after: UUID | None
    expires_at: datetime
    version: int
    state: str = "waiting"
    bot_id: UUID | None = None
    visible_until: datetime | None = None


class Mailbox:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.mail: dict[UUID, Mail] = {}
        self.by_bot: defaultdict[UUID, set[UUID]] = defaultdict(set)
        self.next_of: dict[UUID, UUID] = {}  # a message -> the one waiting for it to finish
        self.listeners: list[Callable[[set[UUID]], None]] = []

    def load(self, conn: psycopg.Connection[Any]) -> int:
        """Fill from the messages view in one snapshot; returns the view's position."""
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = conn.execute(
                "SELECT position FROM projection_positions WHERE view = 'messages'"
            ).fetchone()
            rows = conn.execute(
                "SELECT message_id, seq, to_capability, after_id, expires_at, version, state, "
                "bot_id, visible_until FROM messages_view "
                "WHERE state IN ('waiting', 'routed', 'delivered') ORDER BY seq"
            ).fetchall()
        with self.lock:
            for r in rows:
                self._put(Mail(*r))
        return int(row[0]) if row else 0

    def apply(self, events: Iterable[tuple[int, Any]]) -> None:
        news: set[UUID] = set()
        with self.lock:
            for seq, e in events:
                if isinstance(e, Message.Event):
                    self._apply(seq, e, news)
        if news:
            for listener in self.listeners:
                listener(news)

    def _apply(self, seq: int, e: Any, news: set[UUID]) -> None:
        mail = self.mail.get(e.originator_id)
        if isinstance(e, Message.Sent):
            if mail is None and e.originator_version == 1:
                expires = e.timestamp + timedelta(seconds=e.ttl_s)
                self._put(Mail(e.originator_id, seq, e.to_capability, e.after, expires, 1))
            return
        if mail is None or e.originator_version != mail.version + 1:
            return  # seen already, or one is missing in between: the follower brings it
        mail.version = e.originator_version
        match e:
            case Message.Routed():
                if mail.bot_id is not None:
                    self._drop(mail)
                mail.state, mail.bot_id = "routed", e.bot_id
                self.by_bot[e.bot_id].add(mail.message_id)
                news.add(e.bot_id)
            case Message.Delivered():
                mail.state, mail.visible_until = "delivered", e.visible_until
            case Message.Acknowledged() | Message.DeadLettered():
                self._drop(mail)
                del self.mail[mail.message_id]
                waiting = self.next_of.pop(mail.message_id, None)
                follower = None if waiting is None else self.mail.get(waiting)
                if follower is not None and follower.bot_id is not None:
                    news.add(follower.bot_id)

    def _put(self, mail: Mail) -> None:
        self.mail[mail.message_id] = mail
        if mail.after is not None:
            self.next_of[mail.after] = mail.message_id
        if mail.bot_id is not None:
            self.by_bot[mail.bot_id].add(mail.message_id)

    def _drop(self, mail: Mail) -> None:
        if mail.bot_id is None:
            return
        held = self.by_bot.get(mail.bot_id)
        if held is not None:
            held.discard(mail.message_id)
            if not held:
                del self.by_bot[mail.bot_id]

    # -- reading ----------------------------------------------------------------------

    def for_bot(self, bot_id: UUID, now: datetime, limit: int) -> list[UUID]:
        """Oldest first, those the bot may have now: routed to it or back from a delivery
        whose visibility passed, unexpired, with no unfinished message before them."""
        with self.lock:
            ready = [
                m
                for i in self.by_bot.get(bot_id, ())
                if (m := self.mail[i]).expires_at > now
                and (m.after is None or m.after not in self.mail)
                and (
                    m.state == "routed" or (m.visible_until is not None and m.visible_until <= now)
                )
            ]
        return [m.message_id for m in sorted(ready, key=lambda m: m.seq)[:limit]]

    def expired(self, now: datetime, limit: int) -> list[UUID]:
        with self.lock:
            return [i for i, m in self.mail.items() if m.expires_at <= now][:limit]

    def to_route(self, live: set[UUID], limit: int) -> list[tuple[UUID, str]]:
        """Messages sent to a capability with no live recipient: (id, capability)."""
        with self.lock:
            return [
                (m.message_id, m.to_capability)
                for m in self.mail.values()
                if m.to_capability is not None and (m.bot_id is None or m.bot_id not in live)
            ][:limit]

    def load_of(self, bot_id: UUID) -> int:
        """How many unfinished messages the bot has: the postman prefers the least loaded."""
        with self.lock:
            return len(self.by_bot.get(bot_id, ()))

    def next_wake(self) -> datetime | None:
        """The earliest expiry: when the postman has something to do at the latest."""
        with self.lock:
            return min((m.expires_at for m in self.mail.values()), default=None)
