"""The event log ``public.hive_events``: its tables, its hash chain, its append-only guard.

``EVENT_LOG_MIGRATIONS`` (versions 1..9 belong to this module) do three things:

1. Create exactly what ``eventsourcing`` 9.5.6 creates for an application named ``Hive``
   when ``CREATE_TABLE`` is on: the composite type ``stored_event_uuid`` (the recorder
   inserts ``unnest(%s::stored_event_uuid[])``, so it must exist before a ``Hive`` is
   constructed), ``hive_events`` with its notification-id index, the insert function
   used when ``POSTGRES_ENABLE_DB_FUNCTIONS`` is on, and the snapshots table
   ``hive_snapshots``.
2. Hash-chain ``hive_events``. Two columns, ``chain_seq`` and ``chain_hash``, are set by
   a row-level BEFORE INSERT trigger; a statement-level BEFORE INSERT trigger first takes
   ``pg_advisory_xact_lock(CHAIN_LOCK_KEY)``. Because statement triggers fire before the
   first row's ``notification_id`` default is evaluated, writers are serialised from
   allocation of their notification ids until commit, even when they do not take the
   library's ``LOCK TABLE ... IN EXCLUSIVE MODE`` (the ``es_insert_events_uuid`` path
   does not). The row trigger refuses (SQLSTATE ``AP002``) a row whose notification_id
   is not above the head's, so chain order is notification_id order; ``chain_seq`` is
   NOT NULL and unique, so a writer that read a stale head (REPEATABLE READ) fails with
   a unique violation instead of forking the chain. Rows already present when the chain
   is installed are chained in ``notification_id`` order by the migration itself.
3. Make ``hive_events`` append-only: UPDATE, DELETE and TRUNCATE raise SQLSTATE
   ``AP001`` with the message ``hive_events is append-only``; so does an INSERT that
   supplies ``chain_seq`` or ``chain_hash`` itself.

Hash encoding. Entries are chained in ``notification_id`` order; ``chain_seq`` is
1, 2, 3, ... with no gaps. For the entry with ``chain_seq = n``::

    chain_hash(n) = SHA-256( chain_hash(n-1)                      32 bytes
                           || int8(chain_seq)                       8 bytes
                           || int8(notification_id)                 8 bytes
                           || originator_id                        16 bytes (RFC 4122 order)
                           || int8(originator_version)              8 bytes
                           || int4(len(topic_utf8)) || topic_utf8   4 + len bytes
                           || int4(len(state))      || state        4 + len bytes )

    chain_hash(0) = 32 zero bytes (genesis)

where int8/int4 are big-endian two's complement (PostgreSQL ``int8send``/``int4send``),
the UUID is its 16 raw bytes (``uuid_send``, Python ``UUID.bytes``), ``topic_utf8`` is
the topic encoded as UTF-8 (``convert_to(topic, 'UTF8')``) and lengths are in bytes.
In SQL this is ``public.hive_chain_hash(...)``; in Python ``entry_hash(...)``. A NULL
topic or state is refused by the trigger, so both are always present.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final
from uuid import UUID

from store.migrations import Migration

#: Key of the transaction-level advisory lock that serialises appends ("APIARYCH").
CHAIN_LOCK_KEY: Final = 0x4150_4941_5259_4348

#: SQLSTATE raised by the append-only guard (class "AP" is unused by PostgreSQL).
APPEND_ONLY_SQLSTATE: Final = "AP001"
#: SQLSTATE raised when a row would enter the chain behind its head.
CHAIN_ORDER_SQLSTATE: Final = "AP002"

#: ``chain_hash`` of the (virtual) entry before the first one.
GENESIS_HASH: Final = bytes(32)

_FIXED = struct.Struct(">qq16sqi")  # chain_seq, notification_id, uuid, version, len(topic)
_LENGTH = struct.Struct(">i")


def entry_hash(
    prev_hash: bytes,
    seq: int,
    notification_id: int,
    originator_id: UUID,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    """Return the ``chain_hash`` the database trigger computes for this entry."""
    if len(prev_hash) != len(GENESIS_HASH):
        msg = f"prev_hash must be {len(GENESIS_HASH)} bytes, got {len(prev_hash)}"
        raise ValueError(msg)
    return entry_hash_raw(
        prev_hash,
        seq,
        notification_id,
        originator_id.bytes,
        originator_version,
        topic.encode("utf-8"),
        bytes(state),
    )


def entry_hash_raw(
    prev_hash: bytes,
    seq: int,
    notification_id: int,
    originator_id: bytes,
    originator_version: int,
    topic_utf8: bytes,
    state: bytes,
) -> bytes:
    """``entry_hash`` over already-encoded fields (16-byte UUID, UTF-8 topic); unchecked."""
    return hashlib.sha256(
        b"".join(
            (
                prev_hash,
                _FIXED.pack(
                    seq, notification_id, originator_id, originator_version, len(topic_utf8)
                ),
                topic_utf8,
                _LENGTH.pack(len(state)),
                state,
            )
        )
    ).digest()


# The statements eventsourcing 9.5.6 issues for Hive, verbatim (but CREATE TYPE, which has
# no IF NOT EXISTS, is wrapped so that a log already created by the library is accepted).
_LIBRARY_TABLES = """
DO $do$
BEGIN
    CREATE TYPE "public"."stored_event_uuid" AS (originator_id "uuid", originator_version bigint, topic text, state bytea);
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$do$;

CREATE TABLE IF NOT EXISTS "public"."hive_events" (originator_id "uuid" NOT NULL, originator_version bigint NOT NULL, topic text, state bytea, notification_id bigserial, PRIMARY KEY (originator_id, originator_version)) WITH (    autovacuum_enabled = true,    autovacuum_vacuum_threshold = 100000000,    autovacuum_vacuum_scale_factor = 0.5,    autovacuum_analyze_threshold = 1000,    autovacuum_analyze_scale_factor = 0.01);

CREATE UNIQUE INDEX IF NOT EXISTS "hive_events_notification_id_idx" ON "public"."hive_events" (notification_id ASC);

CREATE OR REPLACE FUNCTION "public"."es_insert_events_uuid"(events "public"."stored_event_uuid"[]) RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$BEGIN    SET LOCAL lock_timeout = '0s';    NOTIFY "hive_events";    RETURN QUERY    INSERT INTO "public"."hive_events" AS t (    originator_id, originator_version, topic, state)    SELECT originator_id, originator_version, topic, state    FROM unnest(events)    RETURNING notification_id;END;$BODY$;

CREATE TABLE IF NOT EXISTS "public"."hive_snapshots" (originator_id "uuid" NOT NULL, originator_version bigint NOT NULL, topic text, state bytea, PRIMARY KEY (originator_id, originator_version)) WITH (    autovacuum_enabled = true,    autovacuum_vacuum_threshold = 100000000,    autovacuum_vacuum_scale_factor = 0.5,    autovacuum_analyze_threshold = 1000,    autovacuum_analyze_scale_factor = 0.01);
"""  # noqa: E501

_HASH_CHAIN = f"""
ALTER TABLE public.hive_events ADD COLUMN chain_seq bigint, ADD COLUMN chain_hash bytea;

CREATE FUNCTION public.hive_chain_hash(
    prev_hash bytea,
    seq bigint,
    notification_id bigint,
    originator_id uuid,
    originator_version bigint,
    topic text,
    state bytea
) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN sha256(
    prev_hash
    || int8send(seq)
    || int8send(notification_id)
    || uuid_send(originator_id)
    || int8send(originator_version)
    || int4send(octet_length(convert_to(topic, 'UTF8')))
    || convert_to(topic, 'UTF8')
    || int4send(octet_length(state))
    || state
);

-- Chain the rows already present (a log first created by the library itself).
DO $do$
DECLARE
    r record;
    h bytea := decode(repeat('00', 32), 'hex');
    s bigint := 0;
BEGIN
    FOR r IN
        SELECT notification_id, originator_id, originator_version, topic, state
        FROM public.hive_events ORDER BY notification_id
    LOOP
        IF r.topic IS NULL OR r.state IS NULL THEN
            RAISE EXCEPTION 'hive_events row % has a NULL topic or state', r.notification_id
                USING ERRCODE = 'not_null_violation';
        END IF;
        s := s + 1;
        h := public.hive_chain_hash(
            h, s, r.notification_id, r.originator_id, r.originator_version, r.topic, r.state
        );
        UPDATE public.hive_events SET chain_seq = s, chain_hash = h
        WHERE notification_id = r.notification_id;
    END LOOP;
END
$do$;

ALTER TABLE public.hive_events
    ALTER COLUMN chain_seq SET NOT NULL,
    ALTER COLUMN chain_hash SET NOT NULL;

CREATE UNIQUE INDEX hive_events_chain_seq_idx ON public.hive_events (chain_seq);

CREATE FUNCTION public.hive_events_chain_lock() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock({CHAIN_LOCK_KEY});
    RETURN NULL;
END
$fn$;

CREATE FUNCTION public.hive_events_chain() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    prev_seq bigint;
    prev_hash bytea;
    prev_id bigint;
BEGIN
    IF NEW.chain_seq IS NOT NULL OR NEW.chain_hash IS NOT NULL THEN
        RAISE EXCEPTION 'hive_events is append-only'
            USING ERRCODE = '{APPEND_ONLY_SQLSTATE}',
                  DETAIL = 'chain_seq and chain_hash are computed by the database; '
                           'a client may not set them';
    END IF;
    IF NEW.topic IS NULL OR NEW.state IS NULL THEN
        RAISE EXCEPTION 'hive_events: topic and state must not be NULL'
            USING ERRCODE = 'not_null_violation';
    END IF;
    SELECT e.chain_seq, e.chain_hash, e.notification_id
        INTO prev_seq, prev_hash, prev_id
        FROM public.hive_events e
        ORDER BY e.notification_id DESC
        LIMIT 1;
    IF NOT FOUND THEN
        prev_seq := 0;
        prev_hash := decode(repeat('00', 32), 'hex');
    ELSIF NEW.notification_id <= prev_id THEN
        RAISE EXCEPTION 'hive_events: notification_id % is not after the chain head %',
                NEW.notification_id, prev_id
            USING ERRCODE = '{CHAIN_ORDER_SQLSTATE}';
    END IF;
    NEW.chain_seq := prev_seq + 1;
    NEW.chain_hash := public.hive_chain_hash(
        prev_hash, NEW.chain_seq, NEW.notification_id, NEW.originator_id,
        NEW.originator_version, NEW.topic, NEW.state
    );
    RETURN NEW;
END
$fn$;

CREATE TRIGGER hive_events_chain_lock
    BEFORE INSERT ON public.hive_events
    FOR EACH STATEMENT EXECUTE FUNCTION public.hive_events_chain_lock();

CREATE TRIGGER hive_events_chain
    BEFORE INSERT ON public.hive_events
    FOR EACH ROW EXECUTE FUNCTION public.hive_events_chain();
"""

_APPEND_ONLY = f"""
CREATE FUNCTION public.hive_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'hive_events is append-only'
        USING ERRCODE = '{APPEND_ONLY_SQLSTATE}', DETAIL = TG_OP || ' refused';
END
$fn$;

CREATE TRIGGER hive_events_no_update_delete
    BEFORE UPDATE OR DELETE ON public.hive_events
    FOR EACH ROW EXECUTE FUNCTION public.hive_events_append_only();

CREATE TRIGGER hive_events_no_truncate
    BEFORE TRUNCATE ON public.hive_events
    FOR EACH STATEMENT EXECUTE FUNCTION public.hive_events_append_only();
"""

EVENT_LOG_MIGRATIONS: list[Migration] = [
    Migration(1, "eventsourcing tables for Hive", _LIBRARY_TABLES),
    Migration(2, "hive_events hash chain", _HASH_CHAIN),
    Migration(3, "hive_events append-only", _APPEND_ONLY),
]
