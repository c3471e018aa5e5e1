"""Recompute the hash chain of ``public.hive_events`` and name the first place it breaks.

``verify_chain`` streams the whole table in ``notification_id`` order (``COPY ... TO
STDOUT`` in binary) inside one REPEATABLE READ, READ ONLY transaction (one consistent
snapshot; appends serialise and commit in chain order, so a snapshot always holds a
prefix of the chain) and recomputes every hash in Python, independently of the
database's ``hive_chain_hash``. "Position" is a row's ``notification_id``.

The database streams while Python hashes (it is another process: on two cores the two
overlap), and a row costs Python one unpack of its fixed part and one SHA-256 over a slice
of the message as received: the query shapes each row so that the bytes its hash covers
after the previous hash are one run of it. A row that is not plainly good is decoded field
by field and judged as before (``_links``, ``_diagnose``): the reports are the same.

What it cannot see: removal of rows at the tail (what remains is a valid, shorter
chain), and a rewrite that re-chains every row after the change. Only a signed
checkpoint of the head, kept elsewhere, catches those.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from store.chain import GENESIS_HASH, entry_hash_raw

logger = logging.getLogger(__name__)

# ``head`` is the entry's fixed part as the chain encodes it (``store.chain``); COPY's own
# length words in front of the topic and the state are the int4 lengths the encoding puts
# there. So a row's hashed bytes are its message from ``head`` on. ``notification_id``
# comes first on its own, so that a row whose ``head`` is NULL still names its position.
_COPY_ROWS = """
COPY (
    SELECT notification_id,
           chain_hash,
           int8send(chain_seq) || int8send(notification_id) || uuid_send(originator_id)
               || int8send(originator_version),
           convert_to(topic, 'UTF8'),
           state
    FROM public.hive_events
    ORDER BY notification_id
) TO STDOUT (FORMAT BINARY)
"""
# A message: int16 field count, then per field an int32 length (-1: NULL) and its bytes.
_FIELDS = 5
_LENGTH = struct.Struct(">i")
_HEAD = struct.Struct(">qq16sq")  # chain_seq, notification_id, originator_id, version
# The start of a row whose first three fields are all there: (length, notification_id,
# length, chain_hash, length, chain_seq, [the rest of head, skipped], length of the topic).
_START = struct.Struct(f">iqi32siq{_HEAD.size - 8}xi")
_HASHED = 2 + 4 + 8 + 4 + 32 + 4  # where ``head`` starts
_TOPIC = _HASHED + _HEAD.size + 4  # where the topic starts
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_TRAILER = b"\xff\xff"

_SELECT_BY_SEQ = "SELECT min(notification_id) FROM public.hive_events WHERE chain_seq = %s"


@dataclass
class ChainReport:
    """Outcome of ``verify_chain``.

    ``count``, ``head_seq`` and ``head_hash`` describe the verified prefix: the whole
    chain when ``ok``, else the rows before ``bad_position`` (``head_hash`` is None when
    that prefix is empty).
    """

    ok: bool
    count: int
    head_seq: int
    head_hash: bytes | None
    bad_position: int | None
    reason: str | None


@dataclass(frozen=True)
class _Fault:
    position: int
    reason: str
    culprit_verified: bool = False  # the bad row is the last one that had passed as good


# A verified row: (position, chain_seq, chain_hash).
_Link = tuple[int, int, bytes]


def verify_chain(url: str, *, batch: int = 10_000) -> ChainReport:
    """Verify every row of ``public.hive_events``; stop at the first bad one.

    ``batch`` is left from when rows were fetched in batches; they stream now, and it is
    only checked."""
    if batch <= 0:
        msg = f"batch must be positive, got {batch}"
        raise ValueError(msg)
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            report = _verify(conn)
    elapsed = time.perf_counter() - started
    logger.info(
        "verified %d hive_events in %.3fs: %s",
        report.count,
        elapsed,
        "ok" if report.ok else f"failed at position {report.bad_position}",
    )
    return report


def format_report(r: ChainReport) -> str:
    """``OK 12345 events, head <hex>`` or ``FAILED at position N: <reason>``."""
    if r.ok:
        head = r.head_hash.hex() if r.head_hash is not None else "none"
        return f"OK {r.count} events, head {head}"
    return f"FAILED at position {r.bad_position}: {r.reason}"


def _verify(conn: psycopg.Connection[tuple[Any, ...]]) -> ChainReport:
    """One pass over the stream. A row passes the fast test when every field is there,
    it has the next ``chain_seq`` and a later position, and its hash is that of the
    previous hash and its bytes; one that does not is decoded and judged by ``_links``,
    the test of each field (it passes there too, or it is the first bad row)."""
    sha256, start = hashlib.sha256, _START.unpack_from
    prev_seq, prev_position, prev_hash = 0, -1, GENESIS_HASH
    prev: memoryview | None = None  # the last verified row, as received
    before: memoryview | None = None  # the verified row before it
    bad: tuple[Any, ...] | None = None
    # One statement reads the whole log: a statement_timeout meant for the hive's own
    # queries must not cut it short (the batches of a cursor each had the whole timeout).
    conn.execute("SET LOCAL statement_timeout = 0")
    with conn.cursor() as cur, cur.copy(_COPY_ROWS) as copy:
        get = conn.pgconn.get_copy_data  # a message as libpq has it: no per-row objects
        nbytes, data = _first_row(conn)
        while nbytes > 2:  # 2: the trailer; below 0: the end (after the trailer) or an error
            try:
                length, position, hash_length, stored, head_length, seq, topic_length = start(
                    data, 2
                )
                good = (
                    seq == prev_seq + 1
                    and position > prev_position
                    and length == 8
                    and hash_length == 32
                    and head_length == _HEAD.size
                    and topic_length >= 0
                    and data[_TOPIC + topic_length] < 0x80  # the state's length: not NULL
                    and sha256(prev_hash + data[_HASHED:]).digest() == stored
                )
            except (struct.error, IndexError):  # a short row: NULLs; judged below
                good = False
            if not good:
                row = _decode(data)
                if not _links(row, prev_seq, prev_position, prev_hash):
                    bad = row
                    break
                position, seq, stored = row[0], row[1], row[2]
            before, prev = prev, data
            prev_seq, prev_position, prev_hash = seq, position, stored
            nbytes, data = get(0)
        while nbytes > 2:  # after a bad row: the rest, unread (the diagnosis needs the
            nbytes, data = get(0)  # connection, in this snapshot)
        if nbytes != 2 or bytes(data) != _TRAILER:
            raise _broken(conn)
        while copy.read():  # the end of the COPY and its result
            pass
    if bad is None:
        return ChainReport(
            ok=True,
            count=prev_seq,  # the verified rows are chain_seq 1, 2, ... in order
            head_seq=prev_seq,
            head_hash=prev_hash if prev is not None else None,
            bad_position=None,
            reason=None,
        )
    last, second = _link(prev), _link(before)
    fault = _diagnose(conn, bad, last, second)
    if fault.culprit_verified:
        last = second
    count = last[1] if last else 0
    return ChainReport(
        ok=False,
        count=count,
        head_seq=count,
        head_hash=last[2] if last else None,
        bad_position=fault.position,
        reason=fault.reason,
    )


def _first_row(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[int, memoryview]:
    """The first message carries the format's header in front of the first row (or of
    the trailer, when the table is empty): the message without it."""
    nbytes, data = conn.pgconn.get_copy_data(0)
    if nbytes < 0:
        raise _broken(conn)
    if nbytes < len(_SIGNATURE) + 8 or bytes(data[: len(_SIGNATURE)]) != _SIGNATURE:
        raise psycopg.OperationalError("COPY of hive_events: no binary header")
    (extension,) = _LENGTH.unpack_from(data, len(_SIGNATURE) + 4)
    data = data[len(_SIGNATURE) + 8 + extension :]
    if not data:  # the header came alone
        return conn.pgconn.get_copy_data(0)
    return len(data), data


def _broken(conn: psycopg.Connection[tuple[Any, ...]]) -> psycopg.OperationalError:
    """The COPY ended before its trailer: the server's error, from the results it left
    (all read, so that the connection can roll back)."""
    pgconn = conn.pgconn
    error = pgconn.error_message
    while (result := pgconn.get_result()) is not None:
        error = result.error_message or error
    message = error.decode(errors="replace").strip()
    return psycopg.OperationalError(f"COPY of hive_events broke off: {message}")


def _decode(data: memoryview) -> tuple[Any, ...]:
    """A row as the field-by-field checks read it: (position, chain_seq, chain_hash,
    originator_id bytes, originator_version, topic UTF-8, state), None for NULL."""
    (fields,) = struct.unpack_from(">h", data)
    if fields != _FIELDS:
        raise psycopg.OperationalError(f"COPY of hive_events: a row of {fields} fields")
    values: list[bytes | None] = []
    offset = 2
    for _ in range(fields):
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if length < 0:
            values.append(None)
        else:
            values.append(bytes(data[offset : offset + length]))
            offset += length
    position, stored, head, topic, state = values
    seq = oid = version = None
    if head is not None:
        seq, _, oid, version = _HEAD.unpack(head)
    nid = None if position is None else int.from_bytes(position, "big", signed=True)
    return nid, seq, stored, oid, version, topic, state


def _link(data: memoryview | None) -> _Link | None:
    if data is None:
        return None
    nid, seq, stored, *_ = _decode(data)
    return nid, seq, stored


def _links(row: tuple[Any, ...], prev_seq: int, prev_position: int, prev_hash: bytes) -> bool:
    """Whether ``row`` follows the verified row (``prev_*``) in the chain: the test of
    each field, as the chain defines it."""
    nid, seq, stored, oid, version, topic, state = row
    return (
        seq == prev_seq + 1
        and nid > prev_position
        and stored is not None
        and topic is not None
        and state is not None
        and entry_hash_raw(prev_hash, seq, nid, oid, version, topic, state) == stored
    )


def _diagnose(
    conn: psycopg.Connection[tuple[Any, ...]],
    row: tuple[Any, ...],
    prev: _Link | None,
    before: _Link | None,
) -> _Fault:
    """Say what is wrong with ``row``, which failed verification."""
    nid, seq, stored, _oid, _version, topic, state = row
    prev_position, prev_seq = (prev[0], prev[1]) if prev else (None, 0)
    expected = prev_seq + 1
    if prev_position is not None and nid <= prev_position:
        return _Fault(
            nid,
            f"row at position {nid} repeats the notification_id of the row before it: "
            "a row was inserted out of chain",
        )
    if seq is None or stored is None:
        return _Fault(
            nid,
            f"row at position {nid} has no chain_seq or chain_hash: it was inserted out of chain",
        )
    if topic is None or state is None:
        return _Fault(
            nid,
            f"row at position {nid} has a NULL topic or state, which the chain never "
            "admits: the row was altered",
        )
    if seq > expected:
        return _Fault(nid, _gap_reason(conn, nid, seq, prev_seq, expected))
    if seq < expected:
        # Did the row before this one push in? Then this row links to the one before it.
        if intruder := _intruder(row, seq, prev, before):
            return intruder
        where = f"position {prev_position}" if prev else "the start of the chain"
        return _Fault(
            nid,
            f"row at position {nid} was inserted out of chain: its chain_seq {seq} "
            f"does not follow chain_seq {prev_seq} at {where}",
        )
    # Right chain_seq, wrong hash. An intruder may have renumbered this row to make room.
    if intruder := _intruder(row, seq - 1, prev, before):
        return intruder
    altered_before = (
        f" (or the row before it, at position {prev_position}, was altered and re-hashed)"
        if prev
        else ""
    )
    return _Fault(
        nid,
        f"row at position {nid}: stored hash does not match its contents{altered_before}",
    )


def _gap_reason(
    conn: psycopg.Connection[tuple[Any, ...]],
    nid: int,
    seq: int,
    prev_seq: int,
    expected: int,
) -> str:
    with conn.cursor() as cur:
        found = cur.execute(_SELECT_BY_SEQ, (expected,)).fetchone()
    elsewhere = found[0] if found else None
    head = f"position {nid}: chain_seq {seq} follows {prev_seq}"
    if elsewhere is not None:
        return (
            f"{head}: the row with chain_seq {expected} is at position {elsewhere}: "
            "rows were reordered"
        )
    missing = seq - expected
    if missing == 1:
        return f"{head}: a row was deleted"
    return f"{head}: {missing} rows were deleted"


def _intruder(
    row: tuple[Any, ...], original_seq: int, prev: _Link | None, before: _Link | None
) -> _Fault | None:
    """Blame ``prev`` if ``row``, read with ``original_seq``, links to the row before it.

    Then ``prev`` was pushed into the chain after ``row`` had been written: the first
    bad row is ``prev``, even though its own hash is consistent.
    """
    if prev is None or prev[1] != original_seq:
        return None
    nid, _seq, stored, oid, version, topic, state = row
    before_hash = before[2] if before else GENESIS_HASH
    if entry_hash_raw(before_hash, original_seq, nid, oid, version, topic, state) != stored:
        return None
    where = f"position {before[0]}" if before else "the start of the chain"
    return _Fault(
        prev[0],
        f"row at position {prev[0]} was inserted out of chain: "
        f"the row after it (position {nid}) links directly to {where}",
        culprit_verified=True,
    )
