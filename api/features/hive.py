"""The hive itself: the log and its chain, the views' positions, liveness, health, metrics,
the hive's processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature

if TYPE_CHECKING:
    from fastapi import FastAPI

    from store.migrations import Migration


def migrations() -> Sequence[Migration]:
    from projections.bulk import DEFERRED_MIGRATIONS
    from projections.counts import COUNT_MIGRATIONS
    from projections.schema import VIEW_MIGRATIONS
    from store.chain import EVENT_LOG_MIGRATIONS
    from store.liveness import LIVENESS_MIGRATIONS
    from store.processes import PROCESS_MIGRATIONS
    from store.recorder import APPEND_MIGRATIONS

    return [
        *EVENT_LOG_MIGRATIONS,
        *APPEND_MIGRATIONS,
        *VIEW_MIGRATIONS,
        *DEFERRED_MIGRATIONS,
        *COUNT_MIGRATIONS,
        *LIVENESS_MIGRATIONS,
        *PROCESS_MIGRATIONS,
    ]


def routes(app: FastAPI) -> None:
    from api.routes import health, metrics, processes

    for module in (health, metrics, processes):
        app.include_router(module.router)


FEATURE = Feature("hive", migrations=migrations, routes=routes)
