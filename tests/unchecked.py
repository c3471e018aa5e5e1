"""Events as an older version of the hive may have written them, past today's checks: the
log is immutable, so what such a version let in must still be read."""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4

from domain.cause import Cause
from domain.tasks import Task


def unchecked_task(at: datetime, *, payload: str, idempotency_key: str) -> Task:
    """A task submitted as ``Task.submit`` would, but without its checks of the text."""
    return Task._open(
        Task.Submitted,
        id=uuid4(),
        cause=Cause("alice", "req"),
        at=at,
        type="code",
        priority=5,
        capabilities=["code"],
        payload=payload,
        idempotency_key=idempotency_key,
        not_before=None,
        schedule_id=None,
        retry=None,
    )
