"""Tasks: the tasks, stages and performance views, and the dispatcher that routes work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature, include
from api.routes import tasks
from projections.performance_view import ALPHA_MIGRATIONS, PerformanceView
from projections.runner import View
from projections.stage_view import StageView
from projections.tasks_view import TasksView
from runtime.config import Knobs
from runtime.dispatcher import Dispatcher
from runtime.loops import Loop

if TYPE_CHECKING:
    from api.bootstrap import Node
    from api.settings import Settings


def views(settings: Settings) -> Sequence[View]:
    # Outcomes logged before the first config version count with the environment's alpha,
    # as in the engine's copy (``Node.performance``); later ones with the version in force.
    return [TasksView(), PerformanceView(settings.routing_alpha), StageView()]


def loops(node: Node) -> Sequence[Loop]:
    dispatcher = Dispatcher(node.hive, node.index, node.performance)

    def configure(knobs: Knobs) -> None:
        dispatcher.page, dispatcher.config = knobs.dispatch_page, knobs.routing()
        pools = [frozenset(p.capabilities) for p in knobs.pools]
        # A task only a pool's bots could do is not unroutable: the pool grows.
        dispatcher.can_launch = lambda needs: any(needs <= p for p in pools)
        dispatcher.wake.set()

    node.config.on_change(configure)
    return [
        Loop(
            "dispatcher",
            dispatcher.run_once,
            node.settings.poll_interval_s,
            dispatcher.wake,
            dispatcher.wait_hint,
        )
    ]


FEATURE = Feature(
    "tasks",
    migrations=ALPHA_MIGRATIONS,
    views=views,
    loops=loops,
    routes=include(tasks.router),
)
