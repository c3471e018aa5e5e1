"""Recompute the hash chain of ``public.hive_events`` and name the first place it breaks.

``verify_chain`` streams the whole table in ``notification_id`` order through a
server-side cursor inside one REPEATABLE READ, READ ONLY transaction (one consistent
snapshot; appends serialise and commit in chain order, so a snapshot always holds a
prefix of the chain) and recomputes every hash in Python, independently of the
database's ``hive_chain_hash``. "Position" is a row's ``notification_id``.

What it cannot see: removal of rows at the tail (what remains is a valid, shorter
chain), and a rewrite that re-chains every row after the change. Only a signed
checkpoint of the head, kept elsewhere, catches those.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from store.chain import GENESIS_HASH, entry_hash_raw

logger = logging.getLogger(__name__)

# Raw bytes are fetched for the UUID and the topic, so that no per-row Python objects
# are built only to be encoded again; the hashing itself is done by ``entry_hash_raw``.
_SELECT_ROWS = """
SELECT notification_id, chain_seq, chain_hash, uuid_send(originator_id),
       originator_version, convert_to(topic, 'UTF8'), state
FROM public.hive_events
ORDER BY notification_id
"""
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
    """Verify every row of ``public.hive_events``; stop at the first bad one."""
    if batch <= 0:
        msg = f"batch must be positive, got {batch}"
        raise ValueError(msg)
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            report = _verify(conn, batch)
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


def _verify(conn: psycopg.Connection[tuple[Any, ...]], batch: int) -> ChainReport:
    count = 0
    prev: _Link | None = None  # the last verified row
    before: _Link | None = None  # the verified row before it
    prev_position, prev_seq, prev_hash = -1, 0, GENESIS_HASH
    with conn.cursor(name="hive_events_audit", binary=True) as cur:
        cur.itersize = batch
        cur.execute(_SELECT_ROWS)
        while rows := cur.fetchmany(batch):
            for row in rows:
                nid, seq, stored, oid, version, topic, state = row
                if (
                    seq == prev_seq + 1
                    and nid > prev_position
                    and stored is not None
                    and topic is not None
                    and state is not None
                    and entry_hash_raw(prev_hash, seq, nid, oid, version, topic, state) == stored
                ):
                    before = prev
                    prev = (nid, seq, stored)
                    prev_position, prev_seq, prev_hash = prev
                    count += 1
                    continue
                fault = _diagnose(conn, row, prev, before)
                if fault.culprit_verified:
                    count -= 1
                    prev = before
                return ChainReport(
                    ok=False,
                    count=count,
                    head_seq=prev[1] if prev else 0,
                    head_hash=prev[2] if prev else None,
                    bad_position=fault.position,
                    reason=fault.reason,
                )
    return ChainReport(
        ok=True,
        count=count,
        head_seq=prev_seq,
        head_hash=prev[2] if prev else None,
        bad_position=None,
        reason=None,
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
