"""The scaling view: each pool's desired size and why, and every launch of a bot process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from domain.aggregate import event_topics
from domain.launches import Launch
from domain.pools import Pool
from projections.runner import Positioned

POOL_OPENED = (
    "INSERT INTO pools_view (pool_id, pool, version, position) VALUES (%(id)s, %(pool)s, "
    "%(version)s, %(position)s) ON CONFLICT (pool_id) DO NOTHING"
)
POOL_RESIZED = (
    "UPDATE pools_view SET desired = %(desired)s, reason = %(reason)s, inputs = %(inputs)s, "
    "resized_at = %(at)s, version = %(version)s, position = %(position)s "
    "WHERE pool_id = %(id)s AND version < %(version)s"
)
LAUNCH_REQUESTED = (
    "INSERT INTO launches_view (launch_id, pool, launcher, state, reason, requested_at, "
    "version, position) VALUES (%(id)s, %(pool)s, %(launcher)s, 'requested', %(reason)s, "
    "%(at)s, %(version)s, %(position)s) ON CONFLICT (launch_id) DO NOTHING"
)
LAUNCH_CHANGED = (
    "UPDATE launches_view SET state = %(state)s, "
    "bot_id = COALESCE(%(bot_id)s, bot_id), reason = COALESCE(%(reason)s, reason), "
    "exit_code = COALESCE(%(exit_code)s, exit_code), "
    "registered_at = CASE WHEN %(state)s = 'registered' THEN %(at)s ELSE registered_at END, "
    "closed_at = CASE WHEN %(state)s IN ('stopped', 'failed') THEN %(at)s ELSE closed_at END, "
    "version = %(version)s, position = %(position)s "
    "WHERE launch_id = %(id)s AND version < %(version)s"
)


class ScalingView:
    name = "scaling"
    tables: tuple[str, ...] = ("pools_view", "launches_view")
    topics: tuple[str, ...] = (*event_topics(Pool), *event_topics(Launch))
    handles: frozenset[type] = frozenset(
        {
            Pool.Opened,
            Pool.Resized,
            Launch.Requested,
            Launch.Registered,
            Launch.Stopping,
            Launch.Stopped,
            Launch.Failed,
        }
    )
    ignores: frozenset[type] = frozenset()

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        for p in events:
            e = p.event
            common = {
                "id": e.originator_id,
                "at": e.timestamp,
                "version": e.originator_version,
                "position": p.position,
            }
            match e:
                case Pool.Opened():
                    cur.execute(POOL_OPENED, {**common, "pool": e.name})
                case Pool.Resized():
                    cur.execute(
                        POOL_RESIZED,
                        {
                            **common,
                            "desired": e.desired,
                            "reason": e.reason,
                            "inputs": Jsonb(e.inputs),
                        },
                    )
                case Launch.Requested():
                    cur.execute(
                        LAUNCH_REQUESTED,
                        {**common, "pool": e.pool, "launcher": e.launcher, "reason": e.reason},
                    )
                case _:
                    cur.execute(LAUNCH_CHANGED, {**common, **_launch_change(e)})


def _launch_change(e: Any) -> dict[str, Any]:
    change: dict[str, Any] = {"bot_id": None, "reason": None, "exit_code": None}
    match e:
        case Launch.Registered():
            return {**change, "state": "registered", "bot_id": e.bot_id}
        case Launch.Stopping():
            return {**change, "state": "stopping", "reason": e.reason}
        case Launch.Stopped():
            return {**change, "state": "stopped", "exit_code": e.exit_code}
        case Launch.Failed():
            return {**change, "state": "failed", "reason": e.reason, "exit_code": e.exit_code}
    raise TypeError(f"not a launch event: {type(e).__name__}")
