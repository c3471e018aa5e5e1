"""Tasks: the tasks, stages and performance views, the dispatcher that routes work, the
loop that ends attempts past their timeout, their routes and `apiary task`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from api.features import Feature

if TYPE_CHECKING:
    from fastapi import FastAPI

    from api.bootstrap import Node
    from api.settings import Settings
    from projections.runner import View
    from runtime.config import Knobs
    from runtime.loops import Loop
    from store.migrations import Migration


def migrations() -> Sequence[Migration]:
    from projections.performance_view import ALPHA_MIGRATIONS
    from projections.redrive_reads import REDRIVE_MIGRATIONS
    from projections.retry_counts import RETRY_COUNT_MIGRATIONS
    from projections.stage_view import STAGE_MIGRATIONS
    from projections.stage_window import WINDOW_MIGRATIONS
    from projections.tasks_view import FLAG_MIGRATIONS, RETRY_MIGRATIONS, ROUND_MIGRATIONS

    return [
        *ALPHA_MIGRATIONS,
        *FLAG_MIGRATIONS,
        *ROUND_MIGRATIONS,
        *RETRY_MIGRATIONS,
        *STAGE_MIGRATIONS,
        *RETRY_COUNT_MIGRATIONS,
        *REDRIVE_MIGRATIONS,
        *WINDOW_MIGRATIONS,
    ]


def views(settings: Settings) -> Sequence[View]:
    from projections.performance_view import PerformanceView
    from projections.stage_view import StageView
    from projections.tasks_view import TasksView

    # Before the first config version the seeding environment's alpha: as the engine's copy.
    return [TasksView(), PerformanceView(settings.routing_alpha), StageView()]


def loops(node: Node) -> Sequence[Loop]:
    from domain.modes import DEGRADED, MAINTENANCE
    from runtime.dispatcher import Dispatcher
    from runtime.loops import Loop

    dispatcher = Dispatcher(node.hive, node.index, node.performance)

    def leading() -> bool:
        lead = node.leaderships.get("dispatcher")
        return lead is not None and lead.leading

    dispatcher.leading = leading
    # Maintenance holds work: no round, no hand-off; the mode's change wakes it at once.
    dispatcher.paused = lambda: node.mode.mode == MAINTENANCE
    node.mode.on_change(lambda _: dispatcher.wake.set())

    def shunned() -> frozenset[UUID]:
        """Degraded: the bots that failed an attempt lately are kept away from."""
        if node.mode.mode != DEGRADED:
            return frozenset()
        window = timedelta(seconds=node.config.knobs.degradation.failing_window_s)
        return node.index.recently_failed(node.clock() - window)

    dispatcher.shunned = shunned
    node.hive.tasks.placer = dispatcher  # new tasks may be assigned in their submission

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
        ),
        _timeouts(node),
    ]


def _timeouts(node: Node) -> Loop:
    from runtime.loops import Loop
    from runtime.retry_config import RetryConfig
    from runtime.timeouts import AttemptTimeouts

    timeouts = AttemptTimeouts(node.hive, node.index)
    in_force: RetryConfig | None = None

    def configure(knobs: Knobs) -> None:
        nonlocal in_force
        if knobs.retry == in_force:
            return  # another part of the config changed: the deadlines stand
        in_force = knobs.retry
        policies = knobs.retry.policies()
        timeouts.configure((lambda t: policies(t).timeout_s) if policies.timeouts else None)

    node.config.on_change(configure)
    return Loop(
        "timeouts",
        timeouts.run_once,
        node.settings.poll_interval_s,
        timeouts.wake,
        timeouts.wait_hint,
    )


def routes(app: FastAPI) -> None:
    from api.routes import tasks

    app.include_router(tasks.router)


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.task_cli import add_task_commands

    add_task_commands(sub)


FEATURE = Feature("tasks", migrations=migrations, views=views, loops=loops, routes=routes, cli=cli)
