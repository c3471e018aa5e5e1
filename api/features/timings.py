"""The processes' own timings: HTTP per route, loop rounds, saves, view pages, per minute
(``projections/timings.py``), kept by every process and read over a window by any
(``projections/process_stats.py``, ``GET /v1/processes/timings``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature

if TYPE_CHECKING:
    from fastapi import FastAPI

    from store.migrations import Migration


def migrations() -> Sequence[Migration]:
    from projections.process_stats import PROCESS_MINUTE_MIGRATIONS

    return PROCESS_MINUTE_MIGRATIONS


def routes(app: FastAPI) -> None:
    from api.routes import timings

    app.include_router(timings.router)


FEATURE = Feature("timings", migrations=migrations, routes=routes)
