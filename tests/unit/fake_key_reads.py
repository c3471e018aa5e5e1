"""The keys view for API tests: folded from the Hive's log on every read; no key is ever
used (last use is the API processes' soft state, written in the integration tests)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.hive import Hive
from domain.keys import ApiKey
from projections.key_reads import KeyFilter, KeyRow
from projections.reads import decode_cursor, encode_cursor


class LogKeyReads:
    def __init__(self, hive: Hive) -> None:
        self.hive = hive

    def rows(self) -> list[KeyRow]:
        seq: dict[UUID, int] = {}
        for n in self.hive.recorder.select_notifications(start=1, limit=1_000_000):
            if n.topic.endswith("ApiKey.Issued"):
                seq[n.originator_id] = n.id
        found = self.hive.load_many(ApiKey, seq)
        return sorted((_row(k, seq[i]) for i, k in found.items()), key=lambda r: r.seq)

    def list(
        self, flt: KeyFilter, *, now: datetime, limit: int, cursor: str | None
    ) -> tuple[list[KeyRow], str | None]:
        after = decode_cursor(cursor) if cursor else 0
        rows = [
            r
            for r in self.rows()
            if r.seq > after
            and flt.role in (None, r.role)
            and flt.name in (None, r.name)
            and flt.bot_id in (None, r.bot_id)
            and (flt.include_revoked or r.revoked_at is None)
            and (flt.include_expired or r.expires_at is None or r.expires_at > now)
        ]
        more = len(rows) > limit
        return rows[:limit], encode_cursor(rows[limit - 1].seq) if more else None

    def last_used(self, key_id: UUID) -> datetime | None:
        return None


def _row(key: ApiKey, seq: int) -> KeyRow:
    return KeyRow(
        key_id=key.id,
        seq=seq,
        name=key.name,
        principal=key.principal,
        role=str(key.role),
        bot_id=key.bot_id,
        created_by=key.issued_by,
        created_at=key.created_on,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        revoked_by=key.revoked_by,
        replaces=key.replaces,
        replaced_by=key.replaced_by,
        last_used_at=None,
    )
