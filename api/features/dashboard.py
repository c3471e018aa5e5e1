"""The dashboard: its pages, data, operators' actions and live stream (read from the views)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature

if TYPE_CHECKING:
    from fastapi import FastAPI

    from store.migrations import Migration


def migrations() -> Sequence[Migration]:
    from projections.dashboard_reads import MIGRATIONS

    return MIGRATIONS


def routes(app: FastAPI) -> None:
    from api.dashboard import routes

    routes.install(app)


FEATURE = Feature("dashboard", migrations=migrations, routes=routes)
