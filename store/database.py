"""Where the database is: an explicit APIARY_DATABASE_URL, or an embedded server under home."""

from __future__ import annotations

import contextlib
import getpass
import logging
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from store.embedded import EmbeddedPostgres

logger = logging.getLogger(__name__)

DATABASE_URL_ENV = "APIARY_DATABASE_URL"
MAINTENANCE_DATABASE = "postgres"
DEFAULT_REACHABLE_WITHIN_S = 30.0
DEFAULT_PORT = "5432"

_CONNECT_TIMEOUT_S = 10
_MAX_POLL_INTERVAL_S = 0.5
# libpq parameters that eventsourcing's PostgresFactory has an env key for.
_EVENTSOURCING_KEYS = {"dbname", "host", "port", "user", "password", "connect_timeout"}


class DatabaseUnreachableError(RuntimeError):
    """The PostgreSQL server did not accept connections before the deadline."""


def describe_target(url: str) -> str:
    """Host and port (or Unix socket) of ``url``; never the password."""
    params = conninfo_to_dict(url)
    host = str(params.get("host") or "")
    port = str(params.get("port") or DEFAULT_PORT)
    if not host or host.startswith("/") or host.startswith("@"):
        socket_dir = host or "the default socket directory"
        return f"unix socket {socket_dir} (port {port})"
    return f"{host}:{port}"


def url_with_database(url: str, dbname: str) -> str:
    """``url`` pointing at database ``dbname`` instead (URL form kept when possible)."""
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres") and "dbname" not in parse_qs(parts.query):
        return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))
    return make_conninfo(url, dbname=dbname)


def wait_until_reachable(url: str, deadline_s: float) -> None:
    """Return once the server of ``url`` answers; raise DatabaseUnreachableError after deadline_s.

    Uses libpq's PQping, so a missing database or a rejected login still counts as
    reachable: the question is whether the server is up.
    """
    deadline = time.monotonic() + deadline_s
    interval = 0.05
    while True:
        remaining = deadline - time.monotonic()
        status = _ping(url, remaining)
        if status == pq.Ping.OK:
            return
        if status == pq.Ping.NO_ATTEMPT:
            raise ValueError(f"invalid connection parameters for {describe_target(url)}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DatabaseUnreachableError(
                f"PostgreSQL at {describe_target(url)} not reachable within {deadline_s:g}s "
                f"(last ping: {status.name})"
            )
        # A refused connection answers at once, so probe again after a bounded pause.
        time.sleep(min(interval, remaining))
        interval = min(interval * 2, _MAX_POLL_INTERVAL_S)


def _ping(url: str, remaining_s: float) -> pq.Ping:
    timeout = max(2, math.ceil(min(remaining_s, _CONNECT_TIMEOUT_S)))  # libpq minimum is 2 s
    conninfo = make_conninfo(url, connect_timeout=timeout)
    return pq.Ping(pq.PGconn.ping(conninfo.encode()))


def ensure_database(url: str) -> None:
    """Create the database named in ``url`` unless it exists (via the maintenance db)."""
    dbname = conninfo_to_dict(url).get("dbname")
    try:
        psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT_S).close()
        return
    except psycopg.OperationalError as original:
        if not dbname:
            raise
        failure = original
    maintenance = url_with_database(url, MAINTENANCE_DATABASE)
    try:
        with psycopg.connect(maintenance, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as c:
            created = _create_unless_exists(c, str(dbname))
    except psycopg.OperationalError as exc:
        logger.debug("maintenance database unavailable", extra={"error": str(exc)})
        raise failure from None
    if not created:  # it exists, so the first failure was something else (auth, limits)
        raise failure
    logger.info("created database", extra={"db_name": dbname, "db_target": describe_target(url)})


def _create_unless_exists(conn: psycopg.Connection[Any], dbname: str) -> bool:
    found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
    if found is not None:
        return False
    with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # a concurrent creator won
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return True


@contextlib.contextmanager
def database_url(
    env: Mapping[str, str],
    home: Path,
    *,
    reachable_within_s: float = DEFAULT_REACHABLE_WITHIN_S,
) -> Iterator[str]:
    """Yield a libpq URL of the Apiary database.

    ``env["APIARY_DATABASE_URL"]`` when set (the server must come up within
    ``reachable_within_s``; the database is created if missing), else an embedded
    server in ``home / "pgdata"``, stopped again on exit.
    """
    configured = env.get(DATABASE_URL_ENV, "").strip()
    if configured:
        wait_until_reachable(configured, reachable_within_s)
        ensure_database(configured)
        logger.info("using configured database", extra={"db_target": describe_target(configured)})
        yield configured
        return
    home.mkdir(parents=True, exist_ok=True)
    with EmbeddedPostgres(home / "pgdata") as server:
        yield server.url


def eventsourcing_env(url: str) -> dict[str, str]:
    """Translate a libpq URL into the env keys of eventsourcing's PostgresFactory."""
    params = {key: str(value) for key, value in conninfo_to_dict(url).items()}
    ignored = sorted(set(params) - _EVENTSOURCING_KEYS)
    if ignored:
        logger.warning(
            "connection parameters not supported by eventsourcing are ignored",
            extra={"db_params": ignored},
        )
    user = params.get("user") or getpass.getuser()
    env = {
        "POSTGRES_DBNAME": params.get("dbname") or user,
        # "" makes libpq use its default Unix socket directory, as an absent host would.
        "POSTGRES_HOST": params.get("host", ""),
        "POSTGRES_PORT": params.get("port") or DEFAULT_PORT,
        "POSTGRES_USER": user,
        "POSTGRES_PASSWORD": params.get("password", ""),
        "POSTGRES_SCHEMA": "public",
    }
    if "connect_timeout" in params:
        env["POSTGRES_CONNECT_TIMEOUT"] = params["connect_timeout"]
    return env
