"""The messages view: one row per message, its state and its place in a conversation.

Read by ``GET /v1/messages`` (a conversation's messages, keyset paged by send position) and
by the mailbox at start (the undelivered and unacknowledged ones). Never by a command: the
Message aggregate decides. Its migrations are 150-152 (``MESSAGE_MIGRATIONS``). It keeps
``message_counts`` too (messages per state, for the dashboard; ``projections/counts.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from domain.aggregate import event_topics
from domain.messages import Message
from projections.counts import CountDeltas
from projections.runner import Positioned
from store.migrations import Migration

MESSAGE_MIGRATIONS = [
    Migration(
        150,
        "views: messages",
        """
        CREATE TABLE IF NOT EXISTS public.messages_view (
            message_id uuid PRIMARY KEY,
            sender text NOT NULL,
            to_bot uuid,
            to_capability text,
            to_pool text,
            conversation text,
            conversation_seq integer NOT NULL,
            after_id uuid,
            task_id uuid,
            body jsonb NOT NULL,
            ttl_s integer NOT NULL,
            state text NOT NULL,
            bot_id uuid,
            attempt integer NOT NULL DEFAULT 0,
            visible_until timestamptz,
            dead_reason text,
            sent_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL,
            finished_at timestamptz,
            seq bigint NOT NULL,
            version integer NOT NULL,
            position bigint NOT NULL
        );
        CREATE INDEX IF NOT EXISTS messages_view_conversation
            ON public.messages_view (conversation, seq) WHERE conversation IS NOT NULL;
        CREATE INDEX IF NOT EXISTS messages_view_open ON public.messages_view (seq)
            WHERE state IN ('waiting', 'routed', 'delivered');
        """,
    ),
    Migration(
        151,
        "views: messages by state (the dashboard's counts and dead letters)",
        """
        CREATE INDEX IF NOT EXISTS messages_view_state_seq ON public.messages_view (state, seq);
        """,
    ),
    Migration(
        152,
        "views: messages counted by state, kept by the messages view",
        """
        CREATE TABLE IF NOT EXISTS public.message_counts (
            state text PRIMARY KEY,
            n bigint NOT NULL
        );
        INSERT INTO public.message_counts (state, n)
            SELECT state, count(*) FROM public.messages_view GROUP BY state
        ON CONFLICT (state) DO UPDATE SET n = EXCLUDED.n;
        """,
    ),
]

INSERT = (
    "INSERT INTO messages_view (message_id, sender, to_bot, to_capability, to_pool, "
    "conversation, conversation_seq, after_id, task_id, body, ttl_s, state, sent_at, "
    "expires_at, seq, version, position) VALUES (%(id)s, %(actor)s, %(to_bot)s, "
    "%(to_capability)s, %(to_pool)s, %(conversation)s, %(cseq)s, %(after)s, %(task_id)s, "
    "%(body)s::jsonb, %(ttl_s)s, 'waiting', %(at)s, %(at)s + make_interval(secs => %(ttl_s)s), "
    "%(position)s, 1, %(position)s) ON CONFLICT (message_id) DO NOTHING RETURNING state"
)
# Returns the state the message leaves and the one it takes (nothing: seen already).
UPDATE = (
    "UPDATE messages_view m SET {set}, version = %(version)s, position = %(position)s "
    "FROM (SELECT state AS was FROM messages_view WHERE message_id = %(id)s) o "
    "WHERE m.message_id = %(id)s AND m.version < %(version)s RETURNING o.was, m.state"
)


class MessagesView:
    name = "messages"
    tables: tuple[str, ...] = ("messages_view", "message_counts")
    topics: tuple[str, ...] = event_topics(Message)

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        counts = CountDeltas("message_counts", ("state",))
        for p in events:
            e = p.event
            common = {
                "id": e.originator_id,
                "version": e.originator_version,
                "position": p.position,
            }
            if isinstance(e, Message.Sent):
                if self._insert(cur, e, common):
                    counts.added(("waiting",))
            elif (moved := self._change(cur, e, common)) is not None:
                counts.moved((moved[0],), moved[1])
        counts.write(cur)

    @staticmethod
    def _insert(cur: psycopg.Cursor[Any], e: Message.Sent, common: dict[str, Any]) -> bool:
        """Add its row; False when it was there already."""
        cur.execute(
            INSERT,
            {
                **common,
                "actor": e.actor,
                "to_bot": e.to_bot,
                "to_capability": e.to_capability,
                "to_pool": e.to_pool,
                "conversation": e.conversation,
                "cseq": e.seq,
                "after": e.after,
                "task_id": e.task_id,
                "body": e.body,
                "ttl_s": e.ttl_s,
                "at": e.timestamp,
            },
        )
        return cur.fetchone() is not None

    def _change(
        self, cur: psycopg.Cursor[Any], e: Any, common: dict[str, Any]
    ) -> tuple[str, str] | None:
        """Apply a change of state: (the state left, the state taken), or None if seen."""
        match e:
            case Message.Routed():
                return self._set(cur, "state = 'routed', bot_id = %(bot)s", common, bot=e.bot_id)
            case Message.Delivered():
                return self._set(
                    cur,
                    "state = 'delivered', attempt = %(attempt)s, visible_until = %(until)s",
                    common,
                    attempt=e.attempt,
                    until=e.visible_until,
                )
            case Message.Acknowledged():
                return self._set(
                    cur, "state = 'acknowledged', finished_at = %(at)s", common, at=e.timestamp
                )
            case Message.DeadLettered():
                return self._set(
                    cur,
                    "state = 'dead', dead_reason = %(reason)s, finished_at = %(at)s",
                    common,
                    reason=e.reason,
                    at=e.timestamp,
                )
        return None

    @staticmethod
    def _set(
        cur: psycopg.Cursor[Any], assignments: str, common: dict[str, Any], **kw: Any
    ) -> tuple[str, str] | None:
        cur.execute(UPDATE.format(set=assignments), {**common, **kw})  # type: ignore[arg-type]
        row = cur.fetchone()
        return None if row is None else (row[0], row[1])
