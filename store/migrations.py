"""Versioned, idempotent SQL migrations for PostgreSQL.

Applied versions are recorded in ``public.apiary_schema_migrations``. A run holds a
session-level advisory lock (``MIGRATION_LOCK_KEY``) from start to finish, so two
processes migrating the same database at once are serialised: the first applies what
is missing, the second finds nothing left to do. Each migration runs in its own
transaction together with the insert of its bookkeeping row, so a failed migration
leaves neither its effects nor its row behind.

Several independent lists of migrations may share one database (each owner uses its
own range of versions); a run only looks at the versions it is given, except that a
version recorded in the database under a different name is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

logger = logging.getLogger(__name__)

#: Key of the session-level advisory lock held for a whole migration run ("APIARYMG").
MIGRATION_LOCK_KEY = 0x4150_4941_5259_4D47

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS public.apiary_schema_migrations (
    version int PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One schema change: ``sql`` may hold several statements (sent as a simple query)."""

    version: int
    name: str
    sql: str


class MigrationError(Exception):
    """The migrations cannot be applied to this database."""


class MigrationConflict(MigrationError):
    """The database records a version under a different name than the code does."""


def validate(migrations: Sequence[Migration]) -> None:
    """Raise ``ValueError`` unless versions are positive, unique and increasing."""
    previous: Migration | None = None
    for migration in migrations:
        if migration.version <= 0:
            msg = f"migration {migration.name!r}: version {migration.version} is not positive"
            raise ValueError(msg)
        if not migration.name.strip():
            msg = f"migration {migration.version} has an empty name"
            raise ValueError(msg)
        if previous is not None and migration.version <= previous.version:
            msg = (
                f"migration versions must be unique and increasing: "
                f"{migration.version} ({migration.name!r}) follows "
                f"{previous.version} ({previous.name!r})"
            )
            raise ValueError(msg)
        previous = migration


def migrate(url: str, migrations: Sequence[Migration]) -> list[Migration]:
    """Apply the migrations not yet recorded in the database; return those applied now."""
    validate(migrations)
    applied_now: list[Migration] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(_CREATE_TABLE)
            recorded: dict[int, str] = dict(
                conn.execute("SELECT version, name FROM public.apiary_schema_migrations")
            )
            _check_conflicts(recorded, migrations)
            for migration in migrations:
                if migration.version in recorded:
                    continue
                logger.info("applying migration %d %s", migration.version, migration.name)
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO public.apiary_schema_migrations (version, name) "
                        "VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied_now.append(migration)
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    if not applied_now:
        logger.debug("no migrations to apply")
    return applied_now


def _check_conflicts(recorded: dict[int, str], migrations: Sequence[Migration]) -> None:
    for migration in migrations:
        name = recorded.get(migration.version)
        if name is not None and name != migration.name:
            msg = (
                f"database has migration {migration.version} named {name!r}, "
                f"but the code names it {migration.name!r}: refusing to migrate"
            )
            raise MigrationConflict(msg)
