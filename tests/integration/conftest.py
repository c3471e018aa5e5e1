"""A freshly migrated database per test, copied from a template migrated once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.bootstrap import migrate
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
