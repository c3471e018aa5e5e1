"""End-to-end fixtures: a migrated database per test (as in integration) and a hive home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Hive
from tests.integration.conftest import db_url, migrated_template  # noqa: F401  (fixtures)


@pytest.fixture
def hive(db_url: str, tmp_path: Path) -> Iterator[Hive]:  # noqa: F811
    h = Hive(db_url=db_url, home=tmp_path / "home")
    yield h
    h.stop()
