"""Schedules: the schedules view, the scheduler loop, their routes and `apiary schedule`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature, include
from api.routes import schedules
from api.schedule_cli import add_schedule_commands, cmd_schedule
from projections.runner import View
from projections.schedule_reads import ScheduleReads
from projections.schedules_view import SchedulesView
from runtime.loops import Loop
from runtime.scheduler import Scheduler

if TYPE_CHECKING:
    from api.bootstrap import Node
    from api.settings import Settings


def views(settings: Settings) -> Sequence[View]:
    return [SchedulesView()]


def loops(node: Node) -> Sequence[Loop]:
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


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    add_schedule_commands(sub, cmd_schedule)


FEATURE = Feature("schedules", views=views, loops=loops, routes=include(schedules.router), cli=cli)
