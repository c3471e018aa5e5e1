"""The fleet: bots registering, heartbeating and claiming; the fleet view; the lease reaper;
`apiary bot` (running one, and the fleet's operator commands)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature

if TYPE_CHECKING:
    from fastapi import FastAPI

    from api.bootstrap import Node
    from api.settings import Settings
    from projections.runner import View
    from runtime.config import Knobs
    from runtime.loops import Loop


def views(settings: Settings) -> Sequence[View]:
    from projections.fleet_view import FleetView

    return [FleetView()]


def loops(node: Node) -> Sequence[Loop]:
    from runtime.loops import Loop
    from runtime.reaper import LeaseReaper

    knobs = node.config.knobs
    reaper = LeaseReaper(node.hive, node.index, node.liveness, grace_s=knobs.bot_lease_ttl_s)
    loop = Loop("reaper", reaper.run_once, knobs.reaper_interval_s)

    def configure(knobs: Knobs) -> None:
        reaper.grace_s, loop.interval = knobs.bot_lease_ttl_s, knobs.reaper_interval_s

    node.config.on_change(configure)
    return [loop]


def routes(app: FastAPI) -> None:
    from api.routes import bots

    app.include_router(bots.router)


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.bot_cli import add_bot_commands

    add_bot_commands(sub)


FEATURE = Feature("fleet", views=views, loops=loops, routes=routes, cli=cli)
