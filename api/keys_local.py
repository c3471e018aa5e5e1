"""``apiary keys`` against the database itself: how an operator with no key yet issues the
first one (and how keys are managed where no API runs). Each action answers what the HTTP
API would (``api/schemas/keys.py``), as JSON values, so the CLI shows both alike.

The list reads the keys view after catching it up with the log (as an engine would; a
running engine's runner and this one never apply an event twice), so it is right even
when no engine runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from psycopg_pool import ConnectionPool

from api.bootstrap import open_hive
from api.schemas.keys import KeyIssued, KeyPublic
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive, IssuedKey
from domain.keys import ApiKey, Role
from projections.key_reads import KeyFilter, KeyReads
from projections.keys_view import KeysView
from projections.runner import ProjectionRunner
from store.recorder import HiveRecorder

ACTOR = "cli:keys"  # who the events of the database-side commands are stamped with

Answer = dict[str, Any]


class LocalKeys:
    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings

    @contextmanager
    def _hive(self) -> Iterator[tuple[Hive, KeyReads]]:
        hive = open_hive(self.url, self.settings)
        pool: ConnectionPool[Any] = ConnectionPool(
            self.url, min_size=1, max_size=1, kwargs={"autocommit": True}
        )
        try:
            yield hive, KeyReads(pool)
        finally:
            pool.close()
            hive.close()

    def list(self, flt: KeyFilter, limit: int, cursor: str | None) -> Answer:
        with self._hive() as (hive, reads):
            ProjectionRunner(
                [KeysView()],
                cast(HiveRecorder, hive.recorder),
                hive.mapper.to_domain_event,
                self.url,
            ).catch_up()
            now = hive.clock()
            rows, next_cursor = reads.list(flt, now=now, limit=limit, cursor=cursor)
        items = [KeyPublic.from_row(r, now).model_dump(mode="json") for r in rows]
        return {"items": items, "next_cursor": next_cursor}

    def show(self, key_id: UUID) -> Answer:
        with self._hive() as (hive, reads):
            return _public(hive, reads, hive.get(ApiKey, key_id))

    def create(
        self, role: Role, name: str, principal: str | None, expires: datetime | int | None
    ) -> Answer:
        with self._hive() as (hive, _):
            expires_at = (
                hive.clock() + timedelta(seconds=expires) if isinstance(expires, int) else expires
            )
            issued = hive.keys.issue(
                name, role, _cause("create"), expires_at=expires_at, principal=principal
            )
            return _issued(hive, issued)

    def revoke(self, key_id: UUID) -> Answer:
        with self._hive() as (hive, reads):
            committed = hive.keys.revoke(key_id, _cause("revoke"))
            return _public(hive, reads, committed.items[0])

    def rotate(self, key_id: UUID) -> Answer:
        with self._hive() as (hive, _):
            issued, _old = hive.keys.rotate(key_id, _cause("rotate"))
            return _issued(hive, issued)


def _cause(action: str) -> Cause:
    return Cause(actor=ACTOR, request_id=f"keys-{action}")


def _public(hive: Hive, reads: KeyReads, key: ApiKey) -> Answer:
    public = KeyPublic.of(key, hive.clock(), reads.last_used(key.id))
    return public.model_dump(mode="json")


def _issued(hive: Hive, issued: IssuedKey) -> Answer:
    return KeyIssued.of_issued(issued, hive.clock()).model_dump(mode="json")
