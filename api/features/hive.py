"""The hive itself: the log and its chain, the views' positions, liveness, health, metrics."""

from __future__ import annotations

from api.features import Feature, include
from api.routes import health, metrics, processes
from projections.counts import COUNT_MIGRATIONS
from projections.schema import VIEW_MIGRATIONS
from store.chain import EVENT_LOG_MIGRATIONS
from store.liveness import LIVENESS_MIGRATIONS
from store.processes import PROCESS_MIGRATIONS
from store.recorder import APPEND_MIGRATIONS

FEATURE = Feature(
    "hive",
    migrations=[
        *EVENT_LOG_MIGRATIONS,
        *APPEND_MIGRATIONS,
        *VIEW_MIGRATIONS,
        *COUNT_MIGRATIONS,
        *LIVENESS_MIGRATIONS,
        *PROCESS_MIGRATIONS,
    ],
    routes=include(health.router, metrics.router, processes.router),
)
