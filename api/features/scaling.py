"""Scaling: the scaling view (pools and launches) and the pools' routes. The autoscaler's
loop starts once HTTP listens (launched bots need it): ``Node.start_scaling``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature, include
from api.routes import pools
from projections.runner import View
from projections.scaling_view import ScalingView

if TYPE_CHECKING:
    from api.settings import Settings


def views(settings: Settings) -> Sequence[View]:
    return [ScalingView()]


FEATURE = Feature("scaling", views=views, routes=include(pools.router))
