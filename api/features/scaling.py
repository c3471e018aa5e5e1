"""Scaling: the scaling view (pools and launches) and the pools' routes. The autoscaler's
loop starts once HTTP listens (launched bots need it): ``Node.start_scaling``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature

if TYPE_CHECKING:
    from fastapi import FastAPI

    from api.settings import Settings
    from projections.runner import View


def views(settings: Settings) -> Sequence[View]:
    from projections.scaling_view import ScalingView

    return [ScalingView()]


def routes(app: FastAPI) -> None:
    from api.routes import pools

    app.include_router(pools.router)


FEATURE = Feature("scaling", views=views, routes=routes)
