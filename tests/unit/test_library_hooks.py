"""What Apiary relies on in the eventsourcing library, pinned so an upgrade fails loudly.

The write kernel uses only the library's public interface (``events.put``, ``collect_events``,
``mutate``, ``take_snapshot``), and no module reaches into another object's private
(``_``-prefixed) members of the library. Two hooks are pinned here by their behaviour:
``Aggregate._create`` (the library's documented way to create an aggregate from a chosen
``Created`` class), and where an aggregate keeps its pending events (the key
``_pending_events`` of its attributes), which ``domain.aggregate.detached`` sets on the
copies commands decide on, since the library's public round trip for that copy
(``Snapshot.take(a).mutate(None)``) costs nine times as much on every command.
"""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import eventsourcing.application
import eventsourcing.domain
import eventsourcing.persistence
import eventsourcing.postgres
from eventsourcing.domain import Aggregate, Snapshot

from domain.aggregate import PENDING_EVENTS, detached
from domain.cause import Cause
from domain.hive import Hive
from domain.tasks import Task, TaskState

ROOMS = ("domain", "store", "projections", "runtime", "api")
REPO = Path(__file__).resolve().parents[2]
NAMED_TUPLE = {"_replace", "_asdict", "_make", "_fields"}  # public, though underscored
PINNED = {"_create"}  # protected hooks we use on purpose, each pinned below
# psycopg_pool's hook (eventsourcing's own pool overrides it too, hence the name here):
# store/gated_pool.py's pool, which stands in for eventsourcing's, overrides it, pinned by
# its behaviour in tests/integration/test_gated_pool.py.
OTHER_LIBRARY = {"_connect"}
AT = datetime(2030, 1, 1, tzinfo=UTC)
CAUSE = Cause("tester", "r1")


def _library_private_names() -> set[str]:
    """Every ``_name`` the library's classes define or set on their instances."""
    names: set[str] = set()
    for module in (
        eventsourcing.application,
        eventsourcing.domain,
        eventsourcing.persistence,
        eventsourcing.postgres,
    ):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")} - NAMED_TUPLE


def _submitted(*, collected: bool = True) -> Task:
    task = Task.submit(
        task_id=uuid4(),
        type="code",
        priority=5,
        capabilities=None,
        payload="{}",
        idempotency_key=None,
        cause=CAUSE,
        at=AT,
    )
    if collected:
        task.collect_events()
    return task


def test_no_module_reaches_into_the_library_privately() -> None:
    private = _library_private_names() - PINNED - OTHER_LIBRARY
    found = []
    for room in ROOMS:
        for path in sorted((REPO / room).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in private
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                ):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}")
    assert found == []


def test_create_makes_a_new_aggregate_at_version_one_with_its_created_event() -> None:
    task = _submitted(collected=False)
    assert task.version == 1
    (created,) = task.collect_events()
    assert isinstance(created, Task.Submitted)
    assert created.mutate(None) == task


def test_a_detached_copy_shares_no_events_with_its_original() -> None:
    original = _submitted()
    copy = detached(original)
    assert copy == original and copy is not original
    # ... and it is the copy the library's own snapshot round trip makes
    assert copy == Snapshot.take(original).mutate(None)
    assert copy.pending_events == [] and PENDING_EVENTS in vars(
        Snapshot.take(original).mutate(None)
    )
    copy.cancel("no longer needed", CAUSE, AT)
    assert original.pending_events == [] and original.state is TaskState.PENDING
    assert len(copy.pending_events) == 1 and copy.state is TaskState.CANCELLED
    original.cancel("changed my mind", CAUSE, AT)
    assert len(copy.pending_events) == 1


def test_the_event_store_returns_each_recorded_event_with_its_log_position() -> None:
    hive = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    tasks = [_submitted(), _submitted()]
    for task in tasks:
        task.cancel("x", CAUSE, AT)
    events = [e for t in tasks for e in t.collect_events()]
    recordings = hive.log.events.put(events)
    assert [r.domain_event for r in recordings] == events
    assert [r.notification.id for r in recordings] == sorted(r.notification.id for r in recordings)
    assert isinstance(tasks[0], Aggregate)
