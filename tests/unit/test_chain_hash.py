"""``entry_hash``: the Python side of the hash chain, without a database."""

from __future__ import annotations

import hashlib
import struct
from typing import Any
from uuid import UUID

import pytest

from store.chain import GENESIS_HASH, entry_hash

BASE: dict[str, Any] = {
    "prev_hash": hashlib.sha256(b"prev").digest(),
    "seq": 7,
    "notification_id": 42,
    "originator_id": UUID("00112233-4455-6677-8899-aabbccddeeff"),
    "originator_version": -1,
    "topic": "Pinged ✓é",
    "state": b"\x00\xff",
}


def test_matches_the_value_postgresql_computes() -> None:
    # Computed by PostgreSQL 15 with public.hive_chain_hash on the same arguments.
    assert entry_hash(**BASE).hex() == (
        "1c0b108903112fc394ab4366572ec02b774ea5af59ff84b6aac124db544ae156"
    )
    genesis = entry_hash(GENESIS_HASH, 1, 1, UUID(int=0), 1, "", b"")
    assert genesis.hex() == "54d6e51bba173f1e914215bd358f080d7455fd6be96a0bbc50e01035cb808ed2"


def test_hashes_the_documented_bytes() -> None:
    topic = "Pinged ✓é".encode()
    assert len(topic) == 12  # lengths are in bytes, not characters
    message = (
        BASE["prev_hash"]
        + bytes.fromhex("0000000000000007")  # chain_seq
        + bytes.fromhex("000000000000002a")  # notification_id
        + bytes.fromhex("00112233445566778899aabbccddeeff")  # originator_id
        + bytes.fromhex("ffffffffffffffff")  # originator_version -1
        + bytes.fromhex("0000000c")  # 12 bytes of topic
        + topic
        + bytes.fromhex("00000002")
        + b"\x00\xff"
    )
    assert entry_hash(**BASE) == hashlib.sha256(message).digest()


def test_is_deterministic_and_32_bytes() -> None:
    assert entry_hash(**BASE) == entry_hash(**dict(BASE))
    assert len(entry_hash(**BASE)) == 32


@pytest.mark.parametrize(
    ("field", "other"),
    [
        ("prev_hash", GENESIS_HASH),
        ("seq", 8),
        ("notification_id", 43),
        ("originator_id", UUID("00112233-4455-6677-8899-aabbccddeef0")),
        ("originator_version", 1),
        ("topic", "Pinged ✓e"),
        ("topic", ""),
        ("state", b"\x00\xfe"),
        ("state", b""),
    ],
)
def test_every_field_changes_the_hash(field: str, other: Any) -> None:
    assert entry_hash(**{**BASE, field: other}) != entry_hash(**BASE)


def test_the_topic_state_boundary_is_unambiguous() -> None:
    assert entry_hash(**{**BASE, "topic": "ab", "state": b"c"}) != entry_hash(
        **{**BASE, "topic": "a", "state": b"bc"}
    )


def test_accepts_any_bytes_like_state() -> None:
    assert entry_hash(**{**BASE, "state": bytearray(b"\x00\xff")}) == entry_hash(**BASE)
    assert entry_hash(**{**BASE, "state": memoryview(b"\x00\xff")}) == entry_hash(**BASE)


@pytest.mark.parametrize("prev_hash", [b"", bytes(31), bytes(33)])
def test_refuses_a_previous_hash_of_the_wrong_length(prev_hash: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        entry_hash(**{**BASE, "prev_hash": prev_hash})


@pytest.mark.parametrize("field", ["seq", "notification_id", "originator_version"])
def test_refuses_integers_outside_bigint(field: str) -> None:
    with pytest.raises(struct.error):
        entry_hash(**{**BASE, field: 2**63})
