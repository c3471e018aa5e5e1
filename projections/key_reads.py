"""Reading the keys view: keys by filter, in keyset pages (oldest first), with last use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections.reads import decode_cursor, encode_cursor
from store.key_use import KeyUse

KEY_COLUMNS = (
    "k.key_id, k.seq, k.name, k.principal, k.role, k.bot_id, k.created_by, k.created_at, "
    "k.expires_at, k.revoked_at, k.revoked_by, k.replaces, k.replaced_by, u.last_used_at"
)


@dataclass(frozen=True)
class KeyRow:
    key_id: UUID
    seq: int  # log position of its issue: the list's order
    name: str
    principal: str
    role: str
    bot_id: UUID | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    replaces: UUID | None
    replaced_by: UUID | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class KeyFilter:
    role: str | None = None
    name: str | None = None
    bot_id: UUID | None = None
    include_revoked: bool = False
    include_expired: bool = False


class KeyReads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool
        self.use = KeyUse(pool)

    def list(
        self, flt: KeyFilter, *, now: datetime, limit: int, cursor: str | None
    ) -> tuple[list[KeyRow], str | None]:
        where: list[str] = ["k.seq > %s"]
        params: list[Any] = [decode_cursor(cursor) if cursor else 0]
        for column, value in (("role", flt.role), ("name", flt.name), ("bot_id", flt.bot_id)):
            if value is not None:
                where.append(f"k.{column} = %s")
                params.append(value)
        if not flt.include_revoked:
            where.append("k.revoked_at IS NULL")
        if not flt.include_expired:
            where.append("(k.expires_at IS NULL OR k.expires_at > %s)")
            params.append(now)
        query = (
            f"SELECT {KEY_COLUMNS} FROM keys_view k LEFT JOIN key_use u USING (key_id) "
            f"WHERE {' AND '.join(where)} ORDER BY k.seq LIMIT %s"
        )
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, [*params, limit + 1])
            rows = [KeyRow(**r) for r in cur.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].seq) if more else None

    def last_used(self, key_id: UUID) -> datetime | None:
        return self.use.last_used(key_id)
