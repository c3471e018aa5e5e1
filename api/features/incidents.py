"""The incident detector: the incidents view, the detector's model and loop (engines),
`/v1/incidents` and `apiary incident` (see ``runtime/incidents.py``)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
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
    from projections.incidents_view import INCIDENT_MIGRATIONS

    return INCIDENT_MIGRATIONS


def views(settings: Settings) -> Sequence[View]:
    from projections.incidents_view import IncidentsView

    return [IncidentsView()]


def models(node: Node) -> Sequence[LiveModel]:
    """The detector's model: engines only (it hears outcomes from the feed, in order); it
    hears the process's database gate too."""
    from runtime.incidents import Incidents

    if not node.serves_engine:
        return []
    model = Incidents(node.config.knobs.incidents.policy(), clock=node.clock)
    node.gate.on_down.append(model.database_down)
    node.gate.on_up.append(model.database_up)
    return [model]


def loops(node: Node) -> Sequence[Loop]:
    """The loop that records incidents, with what it reads besides the log: the live
    index's oldest pending tasks, the views' positions, the processes' leaders."""
    from projections.incident_reads import IncidentReads
    from runtime.incidents import LOOP, IncidentLoop, Incidents
    from runtime.loops import Loop
    from store.processes import health_of

    model = next((m for m in node.models if isinstance(m, Incidents)), None)
    if model is None:
        return []
    reads = IncidentReads(node.pool)

    def view_lag() -> Mapping[str, int]:
        head = node.recorder.max_notification_id() or 0
        return {view: max(head - at, 0) for view, at in reads.view_positions().items()}

    detector = IncidentLoop(
        node.hive,
        model,
        clock=node.clock,
        pending=node.index.oldest_pending,
        view_lag=view_lag,
        health=lambda: health_of(node.processes.live()),
    )
    interval = node.settings.poll_interval_s
    loop = Loop(LOOP, detector.run_once, interval, model.wake, detector.wait_hint)

    def configure(knobs: Knobs) -> None:
        model.config = knobs.incidents.policy()
        model.wake.set()

    node.config.on_change(configure)
    return [loop]


def routes(app: FastAPI) -> None:
    from api.routes import incidents

    app.include_router(incidents.router)


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.incident_cli import add_incident_commands

    add_incident_commands(sub)


FEATURE = Feature(
    "incidents",
    migrations=migrations,
    views=views,
    models=models,
    loops=loops,
    routes=routes,
    cli=cli,
)
