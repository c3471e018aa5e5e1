"""The mailbox: the messages not yet acknowledged or dead, per recipient, in memory.

Like the launch book, it starts from a snapshot of its view (the messages view) and then
hears every Message event (the live feed's observers and the Hive's own writes), each
applied once, in version order. The claim long-poll asks it which messages a bot may be
handed now, and the postman which have expired or need a (new) recipient; the Hive's
commands decide again from the log, so a mailbox that is behind only costs a wasted try.
It rings ``listeners`` with the bots that have news: a message routed to them, or the
message before one of theirs in a conversation finished.

The postman's questions cost what they answer, not the size of the mailbox: expiries come
from a heap (finished messages are dropped from it lazily), and the messages needing a
recipient are the unrouted ones plus those held by bots that are no longer live.
"""

from __future__ import annotations

import heapq
import itertools
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
from projections.live_reads import unfinished_messages
from runtime.models import LiveModel

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


class Mailbox(LiveModel):
    name = "mailbox"
    topics = TOPICS
    handles = frozenset(
        {
            Message.Sent,
            Message.Routed,
            Message.Delivered,
            Message.Acknowledged,
            Message.DeadLettered,
        }
    )

    def __init__(self, *, compact_slack: int = 1024) -> None:
        self.position = 0
        self.compact_slack = compact_slack  # finished entries the expiry heap may hold
        self.lock = threading.RLock()
        self.mail: dict[UUID, Mail] = {}
        self.by_bot: defaultdict[UUID, set[UUID]] = defaultdict(set)
        self.next_of: dict[UUID, UUID] = {}  # a message -> the one waiting for it to finish
        self.expiries: list[tuple[datetime, int, UUID]] = []  # a heap; may hold finished ones
        self.unrouted: dict[UUID, None] = {}  # sent to a capability, no recipient yet (in order)
        self.listeners: list[Callable[[set[UUID]], None]] = []

    def fill(self, conn: psycopg.Connection[Any]) -> int:
        """Fill from the messages view; returns the view's position."""
        position, rows = unfinished_messages(conn)
        with self.lock:
            for r in rows:
                self._put(Mail(*r))
        return position

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
                self._drop(mail)
                mail.state, mail.bot_id = "routed", e.bot_id
                self.by_bot[e.bot_id].add(mail.message_id)
                news.add(e.bot_id)
            case Message.Delivered():
                mail.state, mail.visible_until = "delivered", e.visible_until
            case Message.Acknowledged() | Message.DeadLettered():
                self._drop(mail)
                del self.mail[mail.message_id]
                self._compact()
                waiting = self.next_of.pop(mail.message_id, None)
                follower = None if waiting is None else self.mail.get(waiting)
                if follower is not None and follower.bot_id is not None:
                    news.add(follower.bot_id)

    def _put(self, mail: Mail) -> None:
        self.mail[mail.message_id] = mail
        heapq.heappush(self.expiries, (mail.expires_at, mail.seq, mail.message_id))
        if mail.after is not None:
            self.next_of[mail.after] = mail.message_id
        if mail.bot_id is not None:
            self.by_bot[mail.bot_id].add(mail.message_id)
        elif mail.to_capability is not None:
            self.unrouted[mail.message_id] = None

    def _drop(self, mail: Mail) -> None:
        """Take it from its recipient's (or the unrouted) set."""
        if mail.bot_id is None:
            self.unrouted.pop(mail.message_id, None)
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
        """Unfinished messages whose TTL has passed, soonest expired first. They stay until
        their dead letter is heard (the postman's command may fail and be tried again)."""
        with self.lock:
            self._forget_finished()
            found: list[tuple[datetime, int, UUID]] = []
            while self.expiries and len(found) < limit and self.expiries[0][0] <= now:
                entry = heapq.heappop(self.expiries)
                if entry[2] in self.mail:
                    found.append(entry)
            for entry in found:
                heapq.heappush(self.expiries, entry)
        return [message_id for _, _, message_id in found]

    def to_route(self, live: set[UUID], limit: int) -> list[tuple[UUID, str]]:
        """Messages sent to a capability with no live recipient, oldest first:
        (id, capability)."""
        with self.lock:
            stranded = [i for bot, held in self.by_bot.items() if bot not in live for i in held]
            found = [
                m
                for i in itertools.chain(self.unrouted, stranded)
                if (m := self.mail[i]).to_capability is not None
            ]
            found.sort(key=lambda m: m.seq)
            return [(m.message_id, m.to_capability) for m in found[:limit] if m.to_capability]

    def load_of(self, bot_id: UUID) -> int:
        """How many unfinished messages the bot has: the postman prefers the least loaded."""
        with self.lock:
            return len(self.by_bot.get(bot_id, ()))

    def next_wake(self) -> datetime | None:
        """The earliest expiry: when the postman has something to do at the latest."""
        with self.lock:
            self._forget_finished()
            return self.expiries[0][0] if self.expiries else None

    def _compact(self) -> None:
        """Rebuild the expiry heap when finished messages are most of it (acknowledged
        messages with long TTLs would otherwise pile up in it until they expire)."""
        if len(self.expiries) > 2 * len(self.mail) + self.compact_slack:
            self.expiries = [(m.expires_at, m.seq, m.message_id) for m in self.mail.values()]
            heapq.heapify(self.expiries)

    def _forget_finished(self) -> None:
        while self.expiries and self.expiries[0][2] not in self.mail:
            heapq.heappop(self.expiries)
