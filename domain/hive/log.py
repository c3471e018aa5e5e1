"""The log itself: the one eventsourcing Application of the hive, holding no commands.

Its recorder (``store.recorder.HiveRecorder`` in production, the library's in-memory one in
unit tests), mapper and event store are what the write kernel and the readers use, through
the library's public interface only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.application import Application


def utc_now() -> datetime:
    return datetime.now(UTC)


class HiveLog(Application[UUID]):
    """One events table, one global order, one hash chain (see ``store/chain.py``)."""

    name = "Hive"  # the environment's prefix and the stored application name: a contract
    is_snapshotting_enabled = True  # for long-lived aggregates only (the kernel says which)
