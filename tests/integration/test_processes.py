"""The hive's health is the hive's: every api and engine process reports itself, and
readiness says when no engine runs or a loop has no leader, whichever process is asked."""

from __future__ import annotations

import psycopg

from api.bootstrap import Node
from domain.cause import Cause
from domain.config import CONFIG_ID
from runtime.config import Knobs
from store.leadership import lock_key
from tests.integration.helpers import StartNode
from tests.waiting import wait_for

ADMIN = Cause("tester", "r1")
LOOPS = {
    "dispatcher",
    "timeouts",
    "reaper",
    "breaker",
    "scheduler",
    "postman",
    "incidents",
    "modes",
}


def failing(node: Node) -> dict[str, str]:
    return {name: said for name, said in node.check().items() if said != "ok"}


def test_an_api_process_alone_is_not_ready_and_says_no_engine_runs(
    start_node: StartNode,
) -> None:
    api = start_node(role="api", real_time=True)
    assert failing(api) == {"engine": "no engine process is running"}
    rows = api.processes.live()
    assert [(r.role, r.runs, r.leads) for r in rows] == [("api", [], [])]

    engine = start_node(role="engine", real_time=True)
    wait_for(lambda: not failing(api), what="the api process to see an engine leading")
    by_role = {r.role: r for r in api.processes.live()}
    assert set(by_role["engine"].runs) == LOOPS
    assert set(by_role["engine"].leads) == LOOPS
    assert failing(engine) == {}

    engine.stop()  # a clean stop takes its row away: the api process is alone again
    wait_for(lambda: "engine" in failing(api), what="the api process to miss the engine")


def test_a_loop_without_a_leader_is_a_failing_check(start_node: StartNode, db_url: str) -> None:
    # A process that holds the postman's lead but is not a live engine (stuck, or not an
    # Apiary process at all): the engine can never lead that loop.
    with psycopg.connect(db_url, autocommit=True) as squatter:
        squatter.execute("SELECT pg_advisory_lock(%s)", (lock_key("postman"),))
        node = start_node(real_time=True)
        wait_for(
            lambda: failing(node) == {"leader:postman": "no leader"},
            what="every loop but the postman led",
        )
    wait_for(lambda: not failing(node), what="the postman led once the lock is free")


def test_each_process_reports_the_config_version_it_applied(start_node: StartNode) -> None:
    first = start_node(role="engine", real_time=True)
    second = start_node(role="api", real_time=True)
    current = first.hive.config.current()
    knobs = Knobs.parse(current.document).with_changes({"max_batch": 7})
    first.hive.config.change(knobs.document(), current.version, "smaller batches", ADMIN)
    want = current.version + 1

    def versions() -> set[int]:
        for node in (first, second):
            node.beat()
        return {r.config_version for r in first.processes.live()}

    wait_for(lambda: versions() == {want}, timeout=2.0, what="both processes on the new version")
    assert second.settings_now().max_batch == 7
    assert second.hive.config.current().id == CONFIG_ID
