"""Translating libpq URLs, and failing clearly when a server is unreachable."""

from __future__ import annotations

import getpass
import socket
import time

import pytest
from psycopg.conninfo import conninfo_to_dict

from store.database import (
    DatabaseUnreachableError,
    describe_target,
    eventsourcing_env,
    url_with_database,
    wait_until_reachable,
)


def test_socket_url_without_password() -> None:
    env = eventsourcing_env("postgresql://postgres@/apiary?host=/tmp/apiary-pg-1234&port=5432")
    assert env == {
        "POSTGRES_DBNAME": "apiary",
        "POSTGRES_HOST": "/tmp/apiary-pg-1234",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "POSTGRES_SCHEMA": "public",
    }


def test_socket_url_with_escaped_directory() -> None:
    env = eventsourcing_env("postgresql://postgres@/apiary?host=%2Fhome%2Fa%20b%2Fpg")
    assert env["POSTGRES_HOST"] == "/home/a b/pg"
    assert env["POSTGRES_PORT"] == "5432"


def test_tcp_url_with_password() -> None:
    env = eventsourcing_env("postgresql://hive:s%40cret@db.example:6543/apiary_ci")
    assert env == {
        "POSTGRES_DBNAME": "apiary_ci",
        "POSTGRES_HOST": "db.example",
        "POSTGRES_PORT": "6543",
        "POSTGRES_USER": "hive",
        "POSTGRES_PASSWORD": "s@cret",
        "POSTGRES_SCHEMA": "public",
    }


def test_tcp_url_without_password_or_port() -> None:
    env = eventsourcing_env("postgresql://postgres@127.0.0.1/apiary_ci?connect_timeout=7")
    assert env["POSTGRES_HOST"] == "127.0.0.1"
    assert env["POSTGRES_PORT"] == "5432"
    assert env["POSTGRES_PASSWORD"] == ""
    assert env["POSTGRES_CONNECT_TIMEOUT"] == "7"


def test_url_without_user_or_database_uses_libpq_defaults() -> None:
    env = eventsourcing_env("postgresql://")
    assert env["POSTGRES_USER"] == getpass.getuser()
    assert env["POSTGRES_DBNAME"] == getpass.getuser()
    assert env["POSTGRES_HOST"] == ""


def test_url_with_database_keeps_everything_else() -> None:
    url = "postgresql://hive:pw@db:6543/apiary?sslmode=disable"
    moved = url_with_database(url, "postgres")
    assert moved == "postgresql://hive:pw@db:6543/postgres?sslmode=disable"
    socket_url = url_with_database("postgresql://postgres@/apiary?host=/run/pg", "t 1")
    assert conninfo_to_dict(socket_url) == {"user": "postgres", "dbname": "t 1", "host": "/run/pg"}
    assert conninfo_to_dict(url_with_database("host=db dbname=x", "y"))["dbname"] == "y"


def test_describe_target_never_shows_the_password() -> None:
    assert describe_target("postgresql://u:hunter2@db:6543/x") == "db:6543"
    assert describe_target("postgresql://u@/x?host=/run/pg") == "unix socket /run/pg (port 5432)"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_fails_after_deadline_naming_host_and_port() -> None:
    port = _closed_port()
    began = time.monotonic()
    with pytest.raises(DatabaseUnreachableError) as caught:
        wait_until_reachable(f"postgresql://u:hunter2@127.0.0.1:{port}/x", deadline_s=0.5)
    assert 0.5 <= time.monotonic() - began < 5
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "hunter2" not in str(caught.value)
