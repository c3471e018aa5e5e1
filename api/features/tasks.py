"""Tasks: the tasks, stages and performance views, and the dispatcher that routes work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature, include
from api.routes import tasks
from domain.policies.aging import Aging
from domain.policies.routing import RoutingConfig
from projections.performance_view import PerformanceView
from projections.runner import View
from projections.stage_view import StageView
from projections.tasks_view import TasksView
from runtime.dispatcher import Dispatcher
from runtime.loops import Loop

if TYPE_CHECKING:
    from api.bootstrap import Node
    from api.settings import Settings


def views(settings: Settings) -> Sequence[View]:
    return [TasksView(), PerformanceView(settings.routing_alpha), StageView()]


def loops(node: Node) -> Sequence[Loop]:
    s = node.settings
    dispatcher = Dispatcher(
        node.hive,
        node.index,
        node.performance,
        page=s.dispatch_page,
        config=RoutingConfig(aging=Aging(s.routing_aging_s)),
        # A task only a pool's bots could do is not unroutable: the pool grows.
        can_launch=lambda needs: any(needs <= set(p.capabilities) for p in s.pools),
    )
    return [
        Loop(
            "dispatcher",
            dispatcher.run_once,
            s.poll_interval_s,
            dispatcher.wake,
            dispatcher.wait_hint,
        )
    ]


FEATURE = Feature("tasks", views=views, loops=loops, routes=include(tasks.router))
