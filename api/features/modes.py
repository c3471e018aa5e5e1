"""The degradation manager: the hive's mode in the log (its view; every process's copy is
``Node.mode``, with the mode it acts on in ``Node.modes``), the loop ``modes`` that applies
the degradation policy to the open incidents (led by one engine), ``/v1/mode`` and
`apiary mode`.

The open incidents come from a model of the node that has ``open_incidents()`` (the
incident detector's), when the node has one; without it, none are open and only an
operator changes the mode. Whoever knows the incidents changed may set the loop's
``wake`` (``DegradationManager.wake``) for an answer sooner than its tick.
"""

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
    from runtime.degradation import IncidentSource, OpenIncidents
    from runtime.loops import Loop
    from store.migrations import Migration

TICK_S = 1.0  # the net under the wake-ups: incidents' changes and the hysteresis deadline


def migrations() -> Sequence[Migration]:
    from projections.mode_view import MODE_MIGRATIONS

    return MODE_MIGRATIONS


def views(settings: Settings) -> Sequence[View]:
    from projections.mode_view import ModeView

    return [ModeView()]


def loops(node: Node) -> Sequence[Loop]:
    from runtime.degradation import LOOP, DegradationManager
    from runtime.loops import Loop

    knobs = node.config.knobs
    source = incident_source(node)
    incidents: OpenIncidents = source.open_incidents if source is not None else lambda: []
    manager = DegradationManager(
        node.hive, node.mode, incidents, knobs.degradation.policy(), clock=node.clock
    )
    if source is not None:  # an incident opened, moved or resolved: decide at once
        source.listeners.append(manager.wake.set)

    def configure(knobs: Knobs) -> None:
        manager.configure(knobs.degradation.policy())

    node.config.on_change(configure)
    return [Loop(LOOP, manager.run_once, TICK_S, manager.wake, manager.wait_hint)]


def incident_source(node: Node) -> IncidentSource | None:
    """The node's model that knows the open incidents (none: only operators set modes)."""
    from runtime.degradation import IncidentSource

    return next((m for m in node.models if isinstance(m, IncidentSource)), None)


def routes(app: FastAPI) -> None:
    from api.routes import modes

    app.include_router(modes.router)


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.mode_cli import add_mode_commands

    add_mode_commands(sub)


FEATURE = Feature("modes", migrations=migrations, views=views, loops=loops, routes=routes, cli=cli)
