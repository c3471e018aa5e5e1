"""A freshly migrated database per test, copied from a template migrated once per session;
on it a Hive (``hive``) and Nodes (``start_node``, ``node``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from api.bootstrap import Node, migrate
from api.settings import Settings
from domain.hive import Hive
from tests.clock import FakeClock
from tests.integration.helpers import StartNode, hive_on
from tests.pg import create_database, drop_database, unique_database_name


@pytest.fixture(scope="session")
def migrated_template(pg_server_url: str) -> Iterator[str]:
    name = unique_database_name("apiary_tmpl")
    url = create_database(pg_server_url, name)
    migrate(url)
    yield name
    drop_database(pg_server_url, name)


@pytest.fixture
def db_url(pg_server_url: str, migrated_template: str) -> Iterator[str]:
    name = unique_database_name("apiary_t")
    yield create_database(pg_server_url, name, template=migrated_template)
    drop_database(pg_server_url, name)


@pytest.fixture
def hive(db_url: str) -> Iterator[Hive]:
    h = hive_on(db_url)
    yield h
    h.close()


@pytest.fixture
def start_node(
    db_url: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> Iterator[StartNode]:
    """Starts a Node on the test's database: polling every 0.2 s, on the test's ``clock``
    (``real_time=True``: on the wall clock), in ``role`` (default ``all``), other settings
    by name. Every Node it started is stopped when the test ends; then, if one was started
    with ``crashes_fail=True``, an error logged (a control loop crashed) fails the test.
    Only what was logged in the teardown, while the Nodes stopped: ``caplog.records`` holds
    no more there."""
    started: list[Node] = []
    checked = False

    def start(
        *, real_time: bool = False, crashes_fail: bool = False, role: str = "all", **settings: Any
    ) -> Node:
        nonlocal checked
        checked = checked or crashes_fail
        timed = {} if real_time else {"clock": clock}
        given = Settings(**{"poll_interval_s": 0.2, **settings})
        node = Node(given, db_url, role=role, **timed).start()
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        node.stop()
    if checked:
        crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not crashes, f"a control loop crashed: {crashes[0].getMessage()}"


@pytest.fixture
def node(start_node: StartNode) -> Node:
    """A Node with the defaults of ``start_node``; a module that needs other settings
    overrides this fixture."""
    return start_node()
