"""The fleet: bots registering, heartbeating and claiming; the fleet view; the lease reaper;
each bot's circuit breaker (a model and a loop, in engines); `apiary bot` (running one, and
the fleet's operator commands)."""

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
    from runtime.models import LiveModel
    from store.migrations import Migration


def migrations() -> Sequence[Migration]:
    from projections.fleet_view import BREAKER_MIGRATIONS

    return BREAKER_MIGRATIONS


def views(settings: Settings) -> Sequence[View]:
    from projections.fleet_view import FleetView

    return [FleetView()]


def models(node: Node) -> Sequence[LiveModel]:
    """Each bot's circuit breaker: engines only (it hears outcomes from the feed, in order)."""
    from runtime.breaker import Breakers

    return [Breakers(node.config.knobs.breaker.policy())] if node.serves_engine else []


def loops(node: Node) -> Sequence[Loop]:
    return [_reaper(node), *_breaker(node)]


def _reaper(node: Node) -> Loop:
    from runtime.loops import Loop
    from runtime.reaper import LeaseReaper

    knobs = node.config.knobs
    reaper = LeaseReaper(node.hive, node.index, node.liveness, grace_s=knobs.bot_lease_ttl_s)
    loop = Loop("reaper", reaper.run_once, knobs.reaper_interval_s)

    def configure(knobs: Knobs) -> None:
        reaper.grace_s, loop.interval = knobs.bot_lease_ttl_s, knobs.reaper_interval_s

    node.config.on_change(configure)
    return loop


def _breaker(node: Node) -> list[Loop]:
    """The loop that records what each bot's breaker decides (see ``runtime/breaker.py``)."""
    from runtime.breaker import LOOP, BreakerLoop, Breakers
    from runtime.loops import Loop

    breakers = next((m for m in node.models if isinstance(m, Breakers)), None)
    if breakers is None:
        return []
    breaker = BreakerLoop(node.hive, breakers, clock=node.clock)
    interval = node.settings.poll_interval_s
    loop = Loop(LOOP, breaker.run_once, interval, breaker.wake, breaker.wait_hint)

    def configure(knobs: Knobs) -> None:
        breakers.config = knobs.breaker.policy()
        breaker.wake.set()

    node.config.on_change(configure)
    return [loop]


def routes(app: FastAPI) -> None:
    from api.routes import bots

    app.include_router(bots.router)


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.bot_cli import add_bot_commands

    add_bot_commands(sub)


FEATURE = Feature(
    "fleet",
    migrations=migrations,
    views=views,
    models=models,
    loops=loops,
    routes=routes,
    cli=cli,
)
