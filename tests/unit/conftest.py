"""The unit tests' fixtures: a Hive on the in-memory recorder, on the test's ``clock``
(tests/conftest.py), and the API tests' world (a Hive, the app over it, keys)."""

import pytest

from domain.hive import Hive
from tests.clock import FakeClock
from tests.unit.test_api_contract import world  # noqa: F401  (fixture)


@pytest.fixture
def hive(clock: FakeClock) -> Hive:
    return Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock)
