"""The messages view: one row per message, its state and its place in a conversation.

Read by ``GET /v1/messages`` (a conversation's messages, keyset paged by send position) and
by the mailbox at start (the undelivered and unacknowledged ones). Never by a command: the
Message aggregate decides. Its migrations are 150-152 (``MESSAGE_MIGRATIONS``). It keeps
``message_counts`` too (messages per state, for the dashboard; ``projections/counts.py``).
A page is folded per message and written in a few statements, as the tasks view does
(``projections/folded.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg

from domain.aggregate import event_topics
from domain.messages import Message
from projections.folded import RowTable, fold
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
        153,
        "views: messages in send order (the latest messages of all, GET /v1/messages)",
        """
        CREATE INDEX IF NOT EXISTS messages_view_seq ON public.messages_view (seq);
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

COLUMNS = (
    "message_id",
    "sender",
    "to_bot",
    "to_capability",
    "to_pool",
    "conversation",
    "conversation_seq",
    "after_id",
    "task_id",
    "body",
    "ttl_s",
    "state",
    "bot_id",
    "attempt",
    "visible_until",
    "dead_reason",
    "sent_at",
    "expires_at",
    "finished_at",
    "seq",
    "version",
    "position",
)
# Each column's type in the page's JSON document (the body, jsonb, as its text).
TYPES = {
    **dict.fromkeys(("message_id", "to_bot", "after_id", "task_id", "bot_id"), "uuid"),
    **dict.fromkeys(
        ("sender", "to_capability", "to_pool", "conversation", "body", "state", "dead_reason"),
        "text",
    ),
    **dict.fromkeys(("conversation_seq", "ttl_s", "attempt", "version"), "integer"),
    **dict.fromkeys(("visible_until", "sent_at", "expires_at", "finished_at"), "timestamptz"),
    **dict.fromkeys(("seq", "position"), "bigint"),
}
ROWS = RowTable(
    table="messages_view",
    key="message_id",
    types=TYPES,
    jsonb=frozenset({"body"}),
    columns=COLUMNS,
    counts="message_counts",
    counted=("state",),
)


def _sent(p: Positioned) -> dict[str, Any]:
    e = p.event
    return {
        "message_id": e.originator_id,
        "sender": e.actor,
        "to_bot": e.to_bot,
        "to_capability": e.to_capability,
        "to_pool": e.to_pool,
        "conversation": e.conversation,
        "conversation_seq": e.seq,
        "after_id": e.after,
        "task_id": e.task_id,
        "body": e.body,
        "ttl_s": e.ttl_s,
        "state": "waiting",
        "bot_id": None,
        "attempt": 0,
        "visible_until": None,
        "dead_reason": None,
        "sent_at": e.timestamp,
        "expires_at": e.timestamp + timedelta(seconds=e.ttl_s),
        "finished_at": None,
        "seq": p.position,
        "version": e.originator_version,
        "position": p.position,
    }


def _changes(e: Any) -> dict[str, Any]:
    match e:
        case Message.Routed():
            return {"state": "routed", "bot_id": e.bot_id}
        case Message.Delivered():
            return {"state": "delivered", "attempt": e.attempt, "visible_until": e.visible_until}
        case Message.Acknowledged():
            return {"state": "acknowledged", "finished_at": e.timestamp}
        case Message.DeadLettered():
            return {"state": "dead", "dead_reason": e.reason, "finished_at": e.timestamp}
    return {}


class MessagesView:
    name = "messages"
    tables: tuple[str, ...] = ("messages_view", "message_counts")
    topics: tuple[str, ...] = event_topics(Message)
    handles: frozenset[type] = frozenset(
        {
            Message.Sent,
            Message.Routed,
            Message.Delivered,
            Message.Acknowledged,
            Message.DeadLettered,
        }
    )
    ignores: frozenset[type] = frozenset()

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        ROWS.write(cur, *fold(events, "message_id", Message.Sent, _sent, _changes))
