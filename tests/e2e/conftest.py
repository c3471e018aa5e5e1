"""End-to-end fixtures: a migrated database per test (as in integration) and a hive home."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Hive
from tests.integration.conftest import db_url, migrated_template  # noqa: F401  (fixtures)


@pytest.fixture
def make_hive(db_url: str, tmp_path: Path) -> Iterator[Callable[..., Hive]]:  # noqa: F811
    """A hive server on the test's database, in the test's hive home, with settings given
    as environment variables (``APIARY_...="..."``); not started yet. Every hive it made
    is stopped when the test ends."""
    made: list[Hive] = []

    def make(**settings: str) -> Hive:
        made.append(Hive(db_url=db_url, home=tmp_path / "home", settings=settings))
        return made[-1]

    yield make
    for h in reversed(made):
        h.stop()


@pytest.fixture
def hive(make_hive: Callable[..., Hive]) -> Hive:
    return make_hive()
