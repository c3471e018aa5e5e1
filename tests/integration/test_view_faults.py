"""No view is stopped for good by an event it cannot store (on real PostgreSQL).

Outside testing found an idempotency key of "\\u0000" accepted: the tasks view then failed
on that event at every restart, /readyz said 503, new tasks never showed. The commands
refuse such text now (``tests/unit/test_input_text.py``), but the log is immutable and an
older version's log may hold it: here it is written straight into the log, past every
check, as such a version wrote it. Every view goes past it, storing the text escaped."""

from __future__ import annotations

import psycopg

from api.bootstrap import views
from domain.cause import Cause
from domain.hive import Hive, TaskSpec
from domain.tasks import Task
from tests.integration.helpers import runner
from tests.unchecked import unchecked_task

ALICE = Cause("alice", "req")


def test_every_view_stores_what_it_cannot_hold_escaped_and_goes_on(db_url: str, hive: Hive) -> None:
    bad = unchecked_task(  # what an older version let through
        hive.kernel.clock(),
        payload='{"note": "a\\u0000b", "ok": "\\\\u0000 is text"}',
        idempotency_key="key\x00one",
    )
    hive.kernel.save([bad])
    after = hive.tasks.submit([TaskSpec("code")], ALICE).items[0].task
    end = hive.recorder.max_notification_id()
    for view in views():
        assert runner(db_url, hive, view.name).catch_up() == end, view.name
    with psycopg.connect(db_url) as conn:
        key, payload = conn.execute(
            "SELECT idempotency_key, payload FROM tasks_view WHERE task_id = %s", (bad.id,)
        ).fetchone()  # type: ignore[misc]
        shown = conn.execute(
            "SELECT count(*) FROM tasks_view WHERE task_id = %s", (after.id,)
        ).fetchone()
    assert key == "key\ufffdone"
    assert payload == {"note": "a\ufffdb", "ok": "\\u0000 is text"}  # only the NUL replaced
    assert shown == (1,)
    assert hive.get(Task, bad.id).idempotency_key == "key\x00one"  # the log keeps it as it was
