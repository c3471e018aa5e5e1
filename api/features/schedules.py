"""Schedules: the schedules view, the scheduler loop, their routes and `apiary schedule`."""

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
    from runtime.loops import Loop


def views(settings: Settings) -> Sequence[View]:
    from projections.schedules_view import SchedulesView

    return [SchedulesView()]


def loops(node: Node) -> Sequence[Loop]:
    from projections.schedule_reads import ScheduleReads
    from runtime.loops import Loop
    from runtime.scheduler import Scheduler

    scheduler = Scheduler(
        node.hive, node.index, ScheduleReads(node.pool).timetable, clock=node.clock
    )
    return [
        Loop(
            "scheduler",
            scheduler.run_once,
            node.settings.poll_interval_s,
            scheduler.wake,
            scheduler.wait_hint,
        )
    ]


def routes(app: FastAPI) -> None:
    from api.routes import schedules

    app.include_router(schedules.router)


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.schedule_cli import add_schedule_commands, cmd_schedule

    add_schedule_commands(sub, cmd_schedule)


FEATURE = Feature("schedules", views=views, loops=loops, routes=routes, cli=cli)
