"""News of API keys, as the log brings it: each process's key ring forgets a key at once.

A revocation (and a rotation, which revokes) is an event of the key; every api process
follows the log anyway (``runtime/models.py``), so the key ring hears of it within the
feed's delay (a LISTEN wake-up: milliseconds) and no request reads the database to check
a key it has cached. The watch keeps nothing itself: a forgotten key is read again from
the log when it is next presented, so it starts at the log's head: nothing before it
could be news to a key ring that has read nothing yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

import psycopg

from domain.aggregate import event_topics
from domain.keys import ApiKey
from projections.live_reads import log_head
from runtime.models import LiveModel


class KeyWatch(LiveModel):
    name = "keys"
    topics = event_topics(ApiKey)
    handles = frozenset({ApiKey.Issued, ApiKey.Revoked})

    def __init__(self) -> None:
        self.position = 0
        self.listeners: list[Callable[[UUID], object]] = []  # told each key with news

    def fill(self, conn: psycopg.Connection[Any]) -> int:
        return log_head(conn)  # what came before is in the log, where a key is read from

    def apply(self, events: Iterable[tuple[int, Any]]) -> None:
        for _, e in events:
            if isinstance(e, ApiKey.Event):
                for listener in self.listeners:
                    listener(e.originator_id)
