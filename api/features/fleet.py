"""The fleet: bots registering, heartbeating and claiming; the fleet view; the lease reaper."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature, include
from api.routes import bots
from projections.fleet_view import FleetView
from projections.runner import View
from runtime.loops import Loop
from runtime.reaper import LeaseReaper

if TYPE_CHECKING:
    from api.bootstrap import Node
    from api.settings import Settings


def views(settings: Settings) -> Sequence[View]:
    return [FleetView()]


def loops(node: Node) -> Sequence[Loop]:
    s = node.settings
    reaper = LeaseReaper(node.hive, node.index, node.liveness, grace_s=s.bot_lease_ttl_s)
    return [Loop("reaper", reaper.run_once, s.reaper_interval_s)]


FEATURE = Feature("fleet", views=views, loops=loops, routes=include(bots.router))
