"""`apiary audit verify` as an operator runs it: OK with count and head, or the exact bad
position and a non-zero exit, after a superuser rewrote history behind the guard."""

from __future__ import annotations

import os

import psycopg
import pytest

from domain.cause import Cause
from domain.hive import TaskSpec
from tests.e2e.harness import apiary
from tests.integration.helpers import hive_on

pytestmark = pytest.mark.e2e


def test_verify_says_ok_then_names_the_tampered_position(db_url: str) -> None:
    hive = hive_on(db_url)
    try:
        for _ in range(5):
            hive.tasks.submit([TaskSpec("code", payload='{"n": 1}')] * 4, Cause("alice", "r"))
    finally:
        hive.close()
    env = {**os.environ, "APIARY_DATABASE_URL": db_url}
    ok = apiary("audit", "verify", env=env)
    assert ok.returncode == 0
    assert ok.stdout.startswith("OK 20 events, head ")

    with psycopg.connect(db_url, autocommit=True) as conn:
        (victim,) = conn.execute(
            "SELECT notification_id FROM hive_events ORDER BY notification_id OFFSET 11 LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        conn.execute("SET session_replication_role = replica")  # the guard's triggers off
        conn.execute(
            "UPDATE hive_events SET state = replace(state::text, '1', '2')::bytea "
            "WHERE notification_id = %s",
            (victim,),
        )
    bad = apiary("audit", "verify", env=env, check=False)
    assert bad.returncode == 1
    assert bad.stdout.startswith(f"FAILED at position {victim}:"), bad.stdout
