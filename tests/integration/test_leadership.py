"""One leader per loop across engines, on real PostgreSQL: a leader whose connection (and
with it the advisory lock) is gone notices at its next look, and another takes over."""

from __future__ import annotations

import psycopg

from store.leadership import Leadership, application_name
from tests.waiting import wait_for


def test_a_lost_lock_is_noticed_and_another_takes_the_lead(
    db_url: str,
) -> None:
    first = Leadership(db_url, "dispatcher")
    second = Leadership(db_url, "dispatcher")
    try:
        assert first.held() and not second.held()
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (application_name("dispatcher"),),
            )  # its connection dies: PostgreSQL releases the lock
        wait_for(lambda: not first.held(), timeout=5, what="the old leader to notice")
        assert wait_for(second.held, timeout=5, what="the other to take the lead")
    finally:
        first.release()
        second.release()
