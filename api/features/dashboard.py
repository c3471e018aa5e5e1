"""The dashboard: its pages, data, operators' actions and live stream (read from the views)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from api.features import Feature

if TYPE_CHECKING:
    from fastapi import FastAPI


def routes(app: FastAPI) -> None:
    from api.dashboard import routes

    routes.install(app)


FEATURE = Feature("dashboard", routes=routes)
