"""What every kind of test shares: PostgreSQL (tests/pg.py) and the hive's clock."""

import pytest

from tests.clock import T0, FakeClock

pytest_plugins = ["tests.pg"]


@pytest.fixture
def clock() -> FakeClock:
    """The hive's time, moved by the test only; it starts at ``T0``."""
    return FakeClock(T0)
