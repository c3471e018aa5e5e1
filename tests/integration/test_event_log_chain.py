"""The hash-chained, append-only event log on a real PostgreSQL, written by the real library."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from hypothesis import given, settings
from hypothesis import strategies as st

from store.audit import ChainReport, format_report, verify_chain
from store.chain import (
    APPEND_ONLY_SQLSTATE,
    CHAIN_ORDER_SQLSTATE,
    EVENT_LOG_MIGRATIONS,
    GENESIS_HASH,
    entry_hash,
)
from store.database import eventsourcing_env
from store.migrations import MIGRATION_LOCK_KEY, Migration, MigrationConflict, migrate
from tests.pg import create_database, drop_database, unique_database_name

REPO = Path(__file__).resolve().parents[2]


# --- fixtures ----------------------------------------------------------------------------


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """An empty database: these tests migrate it themselves (not the migrated template)."""
    name = unique_database_name("apiary_t")
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)


@pytest.fixture
def db_url(pg_server_url: str) -> Iterator[str]:
    with fresh_database(pg_server_url) as url:
        yield url


@pytest.fixture
def log_url(db_url: str) -> str:
    migrate(db_url, EVENT_LOG_MIGRATIONS)
    return db_url


# --- the application -------------------------------------------------------------------


class Hive(Application[UUID]):
    pass


class Probe(Aggregate):
    def __init__(self, name: str) -> None:
        self.name = name
        self.pings = 0

    @event("Pinged")
    def ping(self, note: str) -> None:
        self.pings += 1


def hive_env(url: str, **extra: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "CREATE_TABLE": "n",
        **eventsourcing_env(url),
        **extra,
    }


@contextmanager
def running_hive(url: str, **extra: str) -> Iterator[Hive]:
    app = Hive(env=hive_env(url, **extra))
    try:
        yield app
    finally:
        app.close()


def save_probes(app: Hive, *, threads: int, saves: int) -> int:
    """Save from several threads at once; return the number of events written."""
    start = threading.Barrier(threads)

    def work(worker: int) -> int:
        start.wait()
        written = 0
        for i in range(saves):
            probes = [Probe(f"w{worker}-{i}-{k}") for k in range(1 + i % 2)]
            for p in probes:
                for n in range(i % 4):
                    p.ping(note=f"ping {n} ✓")
            app.save(*probes)
            written += sum(1 + i % 4 for _ in probes)
        return written

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return sum(pool.map(work, range(threads)))


# --- helpers ---------------------------------------------------------------------------

Row = tuple[int, int, bytes, UUID, int, str, bytes]


def read_log(url: str) -> list[Row]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT notification_id, chain_seq, chain_hash, originator_id, originator_version,"
            " topic, state FROM public.hive_events ORDER BY notification_id"
        ).fetchall()


def append_rows(url: str, n: int, *, label: str = "row") -> None:
    """Append ``n`` rows by plain INSERT (the triggers chain them)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.hive_events (originator_id, originator_version, topic, state) "
            "SELECT gen_random_uuid(), g, %s || '-' || g, sha256(int8send(g)) "
            "FROM generate_series(1, %s) AS g",
            (label, n),
        )


def burn_notification_ids(url: str, n: int) -> None:
    """Leave a gap in notification_id, as rolled-back appends do."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO public.hive_events (originator_id, originator_version, topic, state) "
            "SELECT gen_random_uuid(), g, 'rolled back', '' FROM generate_series(1, %s) AS g",
            (n,),
        )
        conn.rollback()


@pytest.fixture
def chained_url(log_url: str) -> str:
    """30 chained rows whose notification_ids have gaps: 1-10, 14-23, 26-35."""
    append_rows(log_url, 10, label="a")
    burn_notification_ids(log_url, 3)
    append_rows(log_url, 10, label="b")
    burn_notification_ids(log_url, 2)
    append_rows(log_url, 10, label="c")
    positions = [row[0] for row in read_log(log_url)]
    assert positions == [*range(1, 11), *range(14, 24), *range(26, 36)]
    return log_url


@contextmanager
def superuser_bypassing_triggers(url: str) -> Iterator[psycopg.Connection[Any]]:
    """A superuser session for which no trigger fires (as a logical replica)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        yield conn


def assert_failed_at(report: ChainReport, position: int, reason: str, *, verified: int) -> None:
    assert (report.ok, report.bad_position, report.reason) == (False, position, reason)
    assert report.count == verified
    assert report.head_seq == verified
    assert format_report(report) == f"FAILED at position {position}: {reason}"


# --- migrations ------------------------------------------------------------------------


def test_migrating_twice_applies_nothing_the_second_time(db_url: str) -> None:
    first = migrate(db_url, EVENT_LOG_MIGRATIONS)
    second = migrate(db_url, EVENT_LOG_MIGRATIONS)

    assert first == EVENT_LOG_MIGRATIONS
    assert second == []
    with psycopg.connect(db_url) as conn:
        recorded = conn.execute(
            "SELECT version, name FROM public.apiary_schema_migrations ORDER BY version"
        ).fetchall()
    assert recorded == [(m.version, m.name) for m in EVENT_LOG_MIGRATIONS]


def _lock_waiters(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND ((classid::bigint << 32) | objid::bigint) = %s",
        (MIGRATION_LOCK_KEY,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_two_processes_migrating_at_once_both_succeed_with_one_schema(db_url: str) -> None:
    child = (
        "import json, sys\n"
        "from store.chain import EVENT_LOG_MIGRATIONS\n"
        "from store.migrations import migrate\n"
        "print(json.dumps([m.version for m in migrate(sys.argv[1], EVENT_LOG_MIGRATIONS)]))\n"
    )
    with psycopg.connect(db_url, autocommit=True) as holder:
        # Hold the migration lock until both processes are queued on it, so they race.
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", child, db_url],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            deadline = time.monotonic() + 60
            while _lock_waiters(holder) < 2:
                assert all(p.poll() is None for p in procs), "a migrator exited early"
                assert time.monotonic() < deadline, "migrators never queued on the lock"
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        results = [p.communicate(timeout=120) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    applied = sorted(json.loads(out) for out, _ in results)
    assert applied == [[], [m.version for m in EVENT_LOG_MIGRATIONS]]
    with psycopg.connect(db_url) as conn:
        versions = conn.execute(
            "SELECT version FROM public.apiary_schema_migrations ORDER BY version"
        ).fetchall()
        triggers = conn.execute(
            "SELECT tgname FROM pg_trigger"
            " WHERE tgrelid = 'public.hive_events'::regclass AND NOT tgisinternal"
            " ORDER BY tgname"
        ).fetchall()
    assert versions == [(m.version,) for m in EVENT_LOG_MIGRATIONS]
    assert [t for (t,) in triggers] == [
        "hive_events_chain",
        "hive_events_chain_lock",
        "hive_events_no_truncate",
        "hive_events_no_update_delete",
    ]


def test_a_version_recorded_under_another_name_is_refused(db_url: str) -> None:
    migrate(db_url, [Migration(1, "first", "CREATE TABLE t1 (x int)")])

    with pytest.raises(MigrationConflict, match=r"migration 1 named 'first'.*'renamed'"):
        migrate(
            db_url,
            [
                Migration(1, "renamed", "CREATE TABLE t1 (x int)"),
                Migration(2, "second", "CREATE TABLE t2 (x int)"),
            ],
        )
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('public.t2')").fetchone() == (None,)


@pytest.mark.parametrize(
    "versions",
    [[1, 1], [2, 1], [0], [1, 3, 2]],
    ids=["duplicate", "decreasing", "zero", "out-of-order"],
)
def test_versions_must_be_positive_unique_and_increasing(db_url: str, versions: list[int]) -> None:
    migrations = [Migration(v, f"m{i}", "SELECT 1") for i, v in enumerate(versions)]

    with pytest.raises(ValueError, match="version"):
        migrate(db_url, migrations)
    with psycopg.connect(db_url) as conn:
        exists = conn.execute("SELECT to_regclass('public.apiary_schema_migrations')")
        assert exists.fetchone() == (None,)


def test_a_failing_migration_leaves_neither_its_effects_nor_its_row(db_url: str) -> None:
    good = Migration(1, "good", "CREATE TABLE t1 (x int)")
    bad = Migration(2, "bad", "CREATE TABLE t2 (x int); SELECT 1 / 0")

    with pytest.raises(psycopg.errors.DivisionByZero):
        migrate(db_url, [good, bad])
    fixed = Migration(2, "bad", "CREATE TABLE t2 (x int)")
    applied = migrate(db_url, [good, fixed])

    assert applied == [fixed]
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT version FROM public.apiary_schema_migrations ORDER BY 1")
        assert rows.fetchall() == [(1,), (2,)]


def _describe_schema(url: str) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = 'public'"
        " ORDER BY table_name, ordinal_position",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes"
        " WHERE schemaname = 'public' ORDER BY indexname",
        "relations": "SELECT relname, relkind, reloptions FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace ORDER BY relname",
        "functions": "SELECT proname, pg_get_functiondef(oid) FROM pg_proc"
        " WHERE pronamespace = 'public'::regnamespace ORDER BY proname",
        "composite": "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'public.stored_event_uuid'::regclass ORDER BY attnum",
    }
    with psycopg.connect(url) as conn:
        return {key: conn.execute(q).fetchall() for key, q in queries.items()}


def test_the_first_migration_creates_exactly_what_the_library_creates(pg_server_url: str) -> None:
    with fresh_database(pg_server_url) as by_library, fresh_database(pg_server_url) as by_migration:
        with running_hive(by_library, CREATE_TABLE="y", IS_SNAPSHOTTING_ENABLED="y"):
            pass
        migrate(by_migration, EVENT_LOG_MIGRATIONS[:1])

        expected = _describe_schema(by_library)
        actual = _describe_schema(by_migration)
        actual["relations"].remove(("apiary_schema_migrations", "r", None))
        actual["relations"].remove(("apiary_schema_migrations_pkey", "i", None))
        actual["columns"] = [c for c in actual["columns"] if c[0] != "apiary_schema_migrations"]
        actual["indexes"].remove(
            (
                "apiary_schema_migrations_pkey",
                "CREATE UNIQUE INDEX apiary_schema_migrations_pkey"
                " ON public.apiary_schema_migrations USING btree (version)",
            )
        )
    assert actual == expected


def test_a_log_the_library_created_and_filled_is_chained_by_the_migration(db_url: str) -> None:
    with running_hive(db_url, CREATE_TABLE="y") as app:
        before = save_probes(app, threads=2, saves=5)

    migrate(db_url, EVENT_LOG_MIGRATIONS)
    with running_hive(db_url) as app:
        after = save_probes(app, threads=2, saves=5)

    report = verify_chain(db_url)
    assert report.ok, format_report(report)
    assert report.count == report.head_seq == before + after


# --- appending through the library -----------------------------------------------------


@pytest.mark.parametrize(
    "db_functions", [False, True], ids=["library-table-lock", "library-db-function"]
)
def test_concurrent_saves_form_one_dense_verified_chain(log_url: str, db_functions: bool) -> None:
    # The db-function path does not LOCK TABLE: only the trigger's advisory lock orders it.
    extra = {"POSTGRES_ENABLE_DB_FUNCTIONS": "y"} if db_functions else {}
    with running_hive(log_url, **extra) as app:
        written = save_probes(app, threads=8, saves=12)
        notifications = app.notification_log.select(start=1, limit=5)
        assert [n.id for n in notifications] == [1, 2, 3, 4, 5]

    report = verify_chain(log_url, batch=7)

    assert report.ok, format_report(report)
    assert report.count == report.head_seq == written
    rows = read_log(log_url)
    assert [seq for _, seq, *_ in rows] == list(range(1, written + 1))
    assert report.head_hash == rows[-1][2]
    assert format_report(report) == f"OK {written} events, head {rows[-1][2].hex()}"


def test_writers_that_skip_the_table_lock_are_serialised_by_the_trigger(log_url: str) -> None:
    threads, transactions, statements = 6, 10, 3
    start = threading.Barrier(threads)

    def work(worker: int) -> None:
        with psycopg.connect(log_url) as conn:
            start.wait()
            for t in range(transactions):
                with conn.transaction():
                    for s in range(statements):
                        conn.execute(
                            "INSERT INTO public.hive_events"
                            " (originator_id, originator_version, topic, state)"
                            " SELECT gen_random_uuid(), g, %s, '' FROM generate_series(1, 2) g",
                            (f"raw {worker}/{t}/{s}",),
                        )

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(threads)))

    report = verify_chain(log_url)
    assert report.ok, format_report(report)
    assert report.count == threads * transactions * statements * 2


def test_an_empty_log_verifies(pg_server_url: str) -> None:
    with fresh_database(pg_server_url) as url:
        migrate(url, EVENT_LOG_MIGRATIONS)
        report = verify_chain(url)
    assert report == ChainReport(True, 0, 0, None, None, None)
    assert format_report(report) == "OK 0 events, head none"


# --- the append-only guard -------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE public.hive_events SET state = '' WHERE notification_id = 2",
        "UPDATE public.hive_events SET chain_seq = chain_seq",
        "DELETE FROM public.hive_events WHERE notification_id = 3",
        "DELETE FROM public.hive_events",
        "TRUNCATE public.hive_events",
        "INSERT INTO public.hive_events (originator_id, originator_version, topic, state,"
        " chain_seq) VALUES (gen_random_uuid(), 1, 't', '', 4)",
        "INSERT INTO public.hive_events (originator_id, originator_version, topic, state,"
        " chain_hash) VALUES (gen_random_uuid(), 1, 't', '', sha256(''))",
        "INSERT INTO public.hive_events (originator_id, originator_version, topic, state)"
        " SELECT originator_id, originator_version, 't', '' FROM public.hive_events"
        " WHERE notification_id = 1"
        " ON CONFLICT (originator_id, originator_version) DO UPDATE SET state = 'x'",
    ],
    ids=[
        "update",
        "update-chain",
        "delete",
        "delete-all",
        "truncate",
        "insert-chain-seq",
        "insert-chain-hash",
        "upsert",
    ],
)
def test_the_guard_refuses_changes_to_the_log(log_url: str, statement: str) -> None:
    append_rows(log_url, 3)
    before = read_log(log_url)

    with psycopg.connect(log_url, autocommit=True) as conn, pytest.raises(psycopg.Error) as err:
        conn.execute(statement)

    assert err.value.sqlstate == APPEND_ONLY_SQLSTATE
    assert err.value.diag.message_primary == "hive_events is append-only"
    assert read_log(log_url) == before


def test_a_row_behind_the_chain_head_is_refused(log_url: str) -> None:
    append_rows(log_url, 3)
    with psycopg.connect(log_url, autocommit=True) as conn, pytest.raises(psycopg.Error) as err:
        conn.execute(
            "INSERT INTO public.hive_events"
            " (originator_id, originator_version, topic, state, notification_id)"
            " VALUES (gen_random_uuid(), 1, 't', '', 2)"
        )
    assert err.value.sqlstate == CHAIN_ORDER_SQLSTATE


def test_a_null_topic_or_state_is_refused(log_url: str) -> None:
    with psycopg.connect(log_url, autocommit=True) as conn:
        for values in ("NULL, ''", "'t', NULL"):
            with pytest.raises(psycopg.errors.NotNullViolation):
                conn.execute(
                    "INSERT INTO public.hive_events"
                    " (originator_id, originator_version, topic, state)"
                    f" VALUES (gen_random_uuid(), 1, {values})"
                )


# --- tampering by a superuser who bypasses the guard -----------------------------------


def test_a_modified_state_is_found_at_its_row(chained_url: str) -> None:
    with superuser_bypassing_triggers(chained_url) as conn:
        conn.execute(
            "UPDATE public.hive_events SET state = state || '\\x00'::bytea"
            " WHERE notification_id = 17"
        )

    report = verify_chain(chained_url, batch=4)

    assert_failed_at(
        report,
        17,
        "row at position 17: stored hash does not match its contents"
        " (or the row before it, at position 16, was altered and re-hashed)",
        verified=13,
    )


@pytest.mark.parametrize("column", ["topic", "state"])
def test_a_nulled_topic_or_state_is_found_at_its_row(chained_url: str, column: str) -> None:
    with superuser_bypassing_triggers(chained_url) as conn:
        conn.execute(f"UPDATE public.hive_events SET {column} = NULL WHERE notification_id = 17")

    report = verify_chain(chained_url)

    assert_failed_at(
        report,
        17,
        "row at position 17 has a NULL topic or state, which the chain never admits:"
        " the row was altered",
        verified=13,
    )


@pytest.mark.parametrize(
    ("deleted", "detected", "reason", "verified"),
    [
        (18, 19, "position 19: chain_seq 16 follows 14: a row was deleted", 14),
        (1, 2, "position 2: chain_seq 2 follows 0: a row was deleted", 0),
    ],
    ids=["middle", "first"],
)
def test_a_deleted_row_is_found_at_the_row_after_the_gap(
    chained_url: str, deleted: int, detected: int, reason: str, verified: int
) -> None:
    with superuser_bypassing_triggers(chained_url) as conn:
        conn.execute("DELETE FROM public.hive_events WHERE notification_id = %s", (deleted,))

    report = verify_chain(chained_url, batch=4)

    assert_failed_at(report, detected, reason, verified=verified)


@pytest.mark.parametrize("renumber_the_rest", [False, True], ids=["as-is", "renumbered"])
def test_a_forged_row_pushed_into_the_middle_is_named(
    chained_url: str, renumber_the_rest: bool
) -> None:
    # Into the notification_id gap after position 10 (chain_seq 10), with a hash that
    # links correctly to position 10: the forged row is valid on its own.
    rows = read_log(chained_url)
    _, prev_seq, prev_hash, *_ = rows[9]
    forged_id, forged_version, forged_topic, forged_state = uuid4(), 1, "forged", b"evil"
    forged_hash = entry_hash(
        prev_hash, prev_seq + 1, 11, forged_id, forged_version, forged_topic, forged_state
    )
    with superuser_bypassing_triggers(chained_url) as conn:
        conn.execute("DROP INDEX public.hive_events_chain_seq_idx")
        if renumber_the_rest:
            conn.execute(
                "UPDATE public.hive_events SET chain_seq = chain_seq + 1 WHERE chain_seq > %s",
                (prev_seq,),
            )
        conn.execute(
            "INSERT INTO public.hive_events (originator_id, originator_version, topic, state,"
            " notification_id, chain_seq, chain_hash) VALUES (%s, %s, %s, %s, 11, %s, %s)",
            (forged_id, forged_version, forged_topic, forged_state, prev_seq + 1, forged_hash),
        )

    report = verify_chain(chained_url, batch=4)

    assert_failed_at(
        report,
        11,
        "row at position 11 was inserted out of chain:"
        " the row after it (position 14) links directly to position 10",
        verified=10,
    )
    assert report.head_hash == prev_hash


def test_a_row_slipped_in_without_chain_values_is_named(chained_url: str) -> None:
    with superuser_bypassing_triggers(chained_url) as conn:
        conn.execute(
            "ALTER TABLE public.hive_events"
            " ALTER COLUMN chain_seq DROP NOT NULL, ALTER COLUMN chain_hash DROP NOT NULL"
        )
        conn.execute(
            "INSERT INTO public.hive_events"
            " (originator_id, originator_version, topic, state, notification_id)"
            " VALUES (gen_random_uuid(), 1, 'slipped in', '', 12)"
        )

    report = verify_chain(chained_url, batch=4)

    assert_failed_at(
        report,
        12,
        "row at position 12 has no chain_seq or chain_hash: it was inserted out of chain",
        verified=10,
    )


def test_swapped_contents_of_two_rows_are_found_at_the_first(chained_url: str) -> None:
    with superuser_bypassing_triggers(chained_url) as conn:
        conn.execute(
            "UPDATE public.hive_events AS a SET topic = b.topic, state = b.state"
            " FROM public.hive_events AS b"
            " WHERE (a.notification_id, b.notification_id) IN ((20, 28), (28, 20))"
        )

    report = verify_chain(chained_url, batch=4)

    assert_failed_at(
        report,
        20,
        "row at position 20: stored hash does not match its contents"
        " (or the row before it, at position 19, was altered and re-hashed)",
        verified=16,
    )


def test_swapped_notification_ids_are_reported_as_reordering(chained_url: str) -> None:
    with superuser_bypassing_triggers(chained_url) as conn, conn.transaction():
        conn.execute("UPDATE public.hive_events SET notification_id = -6 WHERE notification_id = 6")
        conn.execute("UPDATE public.hive_events SET notification_id = 6 WHERE notification_id = 7")
        conn.execute("UPDATE public.hive_events SET notification_id = 7 WHERE notification_id = -6")

    report = verify_chain(chained_url, batch=4)

    assert_failed_at(
        report,
        6,
        "position 6: chain_seq 7 follows 5: the row with chain_seq 6 is at position 7:"
        " rows were reordered",
        verified=5,
    )


def test_a_rewritten_and_rehashed_row_breaks_the_link_of_the_next(chained_url: str) -> None:
    rows = read_log(chained_url)
    _, _, prev_hash, *_ = rows[13]  # position 17
    nid, seq, _, oid, version, topic, _ = rows[14]  # position 18
    new_state = b'{"rewritten": true}'
    new_hash = entry_hash(prev_hash, seq, nid, oid, version, topic, new_state)
    with superuser_bypassing_triggers(chained_url) as conn:
        conn.execute(
            "UPDATE public.hive_events SET state = %s, chain_hash = %s WHERE notification_id = %s",
            (new_state, new_hash, nid),
        )

    report = verify_chain(chained_url, batch=4)

    assert_failed_at(
        report,
        19,
        "row at position 19: stored hash does not match its contents"
        " (or the row before it, at position 18, was altered and re-hashed)",
        verified=15,
    )
    assert report.head_hash == new_hash  # the rewritten row itself looks fine


def test_deleting_the_tail_goes_unseen_only_a_signed_checkpoint_catches_it(
    chained_url: str,
) -> None:
    # Documented limit: what is left after removing the newest rows is a valid chain.
    rows = read_log(chained_url)
    with psycopg.connect(chained_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE public.hive_events DISABLE TRIGGER hive_events_no_update_delete")
        conn.execute("DELETE FROM public.hive_events WHERE notification_id = 35")
        conn.execute("ALTER TABLE public.hive_events ENABLE TRIGGER hive_events_no_update_delete")

    report = verify_chain(chained_url, batch=4)

    assert report == ChainReport(True, 29, 29, rows[-2][2], None, None)


# --- the Python hash is the trigger's hash ---------------------------------------------


@pytest.fixture(scope="module")
def hashing_conn(pg_server_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A chained log of two rows; each example appends in a transaction it rolls back."""
    with fresh_database(pg_server_url) as url:
        migrate(url, EVENT_LOG_MIGRATIONS)
        append_rows(url, 2)
        with psycopg.connect(url) as conn:
            yield conn


@settings(max_examples=300, deadline=None)
@given(
    originator_id=st.uuids(),
    originator_version=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    topic=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))),
    state=st.binary(),
)
def test_entry_hash_is_the_hash_the_trigger_stores(
    hashing_conn: psycopg.Connection[Any],
    originator_id: UUID,
    originator_version: int,
    topic: str,
    state: bytes,
) -> None:
    conn = hashing_conn
    head = conn.execute(
        "SELECT chain_seq, chain_hash FROM public.hive_events ORDER BY chain_seq DESC LIMIT 1"
    ).fetchone()
    assert head is not None
    row = conn.execute(
        "INSERT INTO public.hive_events (originator_id, originator_version, topic, state)"
        " VALUES (%s, %s, %s, %s) RETURNING notification_id, chain_seq, chain_hash",
        (originator_id, originator_version, topic, state),
    ).fetchone()
    conn.rollback()  # keep the chain short and primary keys free for the next example
    assert row is not None
    nid, seq, stored = row
    assert seq == head[0] + 1
    expected = entry_hash(head[1], seq, nid, originator_id, originator_version, topic, state)
    assert stored == expected


def test_the_chain_starts_from_the_genesis_hash(log_url: str) -> None:
    append_rows(log_url, 1)
    [(nid, seq, stored, oid, version, topic, state)] = read_log(log_url)
    assert seq == 1
    assert stored == entry_hash(GENESIS_HASH, 1, nid, oid, version, topic, state)
