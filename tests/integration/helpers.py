"""Shared moves of the integration tests: a hive on a test database, a view's own runner,
waiting for tasks to be assigned or for a Node's view, view snapshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg

from api.bootstrap import Node, open_hive, views
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive
from domain.tasks import Task, TaskState
from projections.runner import ProjectionRunner, View
from runtime.config import Knobs
from tests.pg import create_database, drop_database, unique_database_name
from tests.waiting import wait_for

# ``start_node`` (tests/integration/conftest.py): settings by name, and ``real_time``,
# ``crashes_fail`` and ``role``; returns the started Node.
StartNode = Callable[..., Node]


def hive_on(url: str, **settings: Any) -> Hive:
    return open_hive(url, Settings(**settings))


def view_named(name: str) -> View:
    return next(v for v in views() if v.name == name)


def runner(url: str, hive: Hive, name: str, page: int = 500) -> ProjectionRunner:
    """A runner of its own for view ``name`` over ``hive``'s log (not a Node's)."""
    return ProjectionRunner(
        view_named(name),
        hive.recorder,
        hive.mapper.to_domain_event,
        url,  # type: ignore[arg-type]
        page_size=page,
        poll_interval=0.2,
    )


def held(hive: Hive, task_ids: list[UUID]) -> list[Task]:
    """The tasks, in the order asked, once every one is assigned; else [] (for wait_for)."""
    tasks = hive.load_many(Task, task_ids)
    if all(t.state is TaskState.ASSIGNED for t in tasks.values()):
        return [tasks[t] for t in task_ids]
    return []


def view_caught_up(node: Node, name: str) -> None:
    """Wait until the node's runner of view ``name`` has applied the log as it ends now."""
    runner = next(r for r in node.runners if name in r.names)
    end = node.hive.recorder.max_notification_id() or 0
    wait_for(lambda: runner.positions[name] >= end, what=f"the {name} view to reach {end}")


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every view, in a stable order, with the views' positions: the tables
    of all the views the engine runs (``views()``), so that a new view is compared too."""
    tables = [t for v in views() for t in v.tables]
    with psycopg.connect(url) as conn:
        out = {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
        out["positions"] = conn.execute(
            "SELECT view, position FROM projection_positions ORDER BY view"
        ).fetchall()
    return out


@contextmanager
def served_hive(server_url: str, template: str) -> Iterator[Node]:
    """A started Node (real time) on a database of its own, copied from the migrated
    ``template``; for a module whose tests share one hive (module-scoped fixtures)."""
    name = unique_database_name("apiary_served")
    url = create_database(server_url, name, template=template)
    node = Node(Settings(poll_interval_s=0.2), url).start()
    try:
        yield node
    finally:
        node.stop()
        drop_database(server_url, name)


def change_config(node: Node, cause: Cause, reason: str = "tuning", **knobs: Any) -> int:
    """A new config version with ``knobs`` changed, once ``node`` has it in force; returns
    its number."""
    current = node.hive.config.current()
    document = Knobs.parse(current.document).with_changes(knobs).document()
    node.hive.config.change(document, current.version, reason, cause)
    version = current.version + 1
    wait_for(lambda: node.config.version >= version, what=f"config version {version} in force")
    return version
