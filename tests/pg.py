"""PostgreSQL for tests: a session-wide server and throw-away databases on it.

Loaded as a pytest plugin from tests/conftest.py. The server is APIARY_DATABASE_URL
when set (CI), else an embedded server in <repo>/.apiary/test-pg shared by concurrent
pytest sessions (the last one to finish stops it).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from store.database import (
    DATABASE_URL_ENV,
    MAINTENANCE_DATABASE,
    ensure_database,
    url_with_database,
    wait_until_reachable,
)
from store.embedded import EmbeddedPostgres

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_PG_DIR = REPO_ROOT / ".apiary" / "test-pg"
REACHABLE_WITHIN_S = 30.0


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a server on which tests may create and drop databases."""
    configured = os.environ.get(DATABASE_URL_ENV, "").strip()
    if configured:
        wait_until_reachable(configured, REACHABLE_WITHIN_S)
        ensure_database(configured)
        yield configured
        return
    server = EmbeddedPostgres(TEST_PG_DIR)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A private temp dir outside pytest's basetemp, for a server of the test's own.

    When we run as root the server runs as another account that must traverse the
    path; a concurrently starting pytest session re-chmods /tmp/pytest-of-<user> to
    0700 (and prunes old numbered dirs), which would pull the floor from under it.
    """
    path = Path(tempfile.mkdtemp(prefix="apiary-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def unique_database_name(prefix: str) -> str:
    """A database name no concurrent test session will also pick."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """(Re)create database ``name`` on the server, optionally from ``template``; return its URL.

    An existing database of that name (a leftover of a killed run) is dropped first.
    """
    drop_database(server_url, name)
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
    with _maintenance(server_url) as conn:
        if template is not None:  # cloning fails while anyone is connected to the template
            _terminate_connections(conn, template)
        conn.execute(statement)
    logger.info("created test database", extra={"db_name": name, "db_template": template})
    return url_with_database(server_url, name)


@contextmanager
def fresh_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new empty database named ``prefix`` plus a unique suffix; dropped on exit."""
    name = unique_database_name(prefix)
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` if it exists, terminating its connections first."""
    with _maintenance(server_url) as conn:
        _terminate_connections(conn, name)
        # FORCE also terminates sessions that connected after the statement above.
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _terminate_connections(conn: psycopg.Connection[tuple[object, ...]], dbname: str) -> None:
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        (dbname,),
    )


def _maintenance(server_url: str) -> psycopg.Connection[tuple[object, ...]]:
    url = url_with_database(server_url, MAINTENANCE_DATABASE)
    return psycopg.connect(url, autocommit=True, connect_timeout=10)
