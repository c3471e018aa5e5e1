"""Reading the messages view: a conversation's messages, oldest first, or the latest
messages of all, newest first, keyset paged; and for the dashboard, messages by state
(``message_counts``, kept by the view) and the newest dead letters (the ``(state, seq)``
index)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections.reads import decode_cursor, encode_cursor

BEFORE = "b"  # a cursor of a newest-first page: the messages sent before it

COLUMNS = (
    "message_id, sender, to_bot, to_capability, to_pool, conversation, conversation_seq, "
    "task_id, body, state, bot_id, attempt, dead_reason, sent_at, expires_at, finished_at, seq"
)


@dataclass(frozen=True)
class MessageRow:
    message_id: UUID
    sender: str
    to_bot: UUID | None
    to_capability: str | None
    to_pool: str | None
    conversation: str | None
    conversation_seq: int
    task_id: UUID | None
    body: Any
    state: str
    bot_id: UUID | None
    attempt: int
    dead_reason: str | None
    sent_at: datetime
    expires_at: datetime
    finished_at: datetime | None
    seq: int  # log position of its sending


class MessageReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def conversation(
        self, name: str, *, limit: int, cursor: str | None, bot: UUID | None = None
    ) -> tuple[list[MessageRow], str | None]:
        """One page of the conversation, in send order; ValueError on a bad cursor. With
        ``bot``, only that bot's messages: those it sent, and those to it or routed to it."""
        after = decode_cursor(cursor) if cursor else 0
        mine = "" if bot is None else " AND (sender = %s OR to_bot = %s OR bot_id = %s)"
        params: tuple[object, ...] = (name, after)
        if bot is not None:
            params += (f"bot:{bot}", bot, bot)
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                f"SELECT {COLUMNS} FROM messages_view WHERE conversation = %s AND seq > %s"
                f"{mine} ORDER BY seq LIMIT %s",
                (*params, limit + 1),
            )
            rows = [MessageRow(**r) for r in cur.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].seq) if more else None

    def latest(
        self, *, limit: int, cursor: str | None, bot: UUID | None = None
    ) -> tuple[list[MessageRow], str | None]:
        """One page of every conversation's messages and those of none, newest first;
        ValueError on a bad cursor. With ``bot``, only that bot's messages."""
        where = ["seq < %s"] if cursor else []
        params: tuple[object, ...] = (decode_cursor(cursor, BEFORE),) if cursor else ()
        if bot is not None:
            where.append("(sender = %s OR to_bot = %s OR bot_id = %s)")
            params += (f"bot:{bot}", bot, bot)
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                f"SELECT {COLUMNS} FROM messages_view{condition} ORDER BY seq DESC LIMIT %s",
                (*params, limit + 1),
            )
            rows = [MessageRow(**r) for r in cur.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].seq, BEFORE) if more else None

    def by_state(self) -> dict[str, int]:
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT state, n FROM message_counts")
            return {state: n for state, n in rows.fetchall()}

    def dead_letters(self, limit: int) -> list[MessageRow]:
        """The newest dead letters first, each with its reason."""
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                f"SELECT {COLUMNS} FROM messages_view WHERE state = 'dead' "
                "ORDER BY seq DESC LIMIT %s",
                (limit,),
            )
            return [MessageRow(**r) for r in cur.fetchall()]
