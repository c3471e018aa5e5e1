"""A rebuild replays the log into views without their secondary indexes, and puts them back;
one that dies before it does leaves them to the next rebuild or the next engine to start."""

from __future__ import annotations

import psycopg

from api.bootstrap import rebuild_views
from api.settings import Settings
from domain.hive import Hive
from projections.runner import reset_view
from tests.integration.helpers import StartNode, snapshot, view_named
from tests.integration.test_views import busy_history


def indexes(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return set(
            conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
        )


def test_a_rebuild_puts_back_every_index_it_dropped(db_url: str, hive: Hive) -> None:
    before = indexes(db_url)
    busy_history(hive, 30)
    rebuild_views(db_url, Settings())
    kept = snapshot(db_url)
    assert indexes(db_url) == before
    rebuild_views(db_url, Settings(), "tasks")
    assert indexes(db_url) == before and snapshot(db_url) == kept


def test_indexes_a_dead_rebuild_dropped_come_back_with_the_next_engine(
    db_url: str, hive: Hive, start_node: StartNode
) -> None:
    before = indexes(db_url)
    reset_view(db_url, view_named("tasks"), deferring_indexes=True)  # and then it died
    missing = {name for name, _ in before - indexes(db_url)}
    assert "tasks_view_state_seq" in missing and "tasks_view_pkey" not in missing
    node = start_node()
    try:
        assert indexes(db_url) == before
    finally:
        node.stop()
