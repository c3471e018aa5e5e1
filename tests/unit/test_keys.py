"""API keys: names, creators, expiry, rotation; and a key issued by the code before names
and expiry still loads (the event's contract)."""

from __future__ import annotations

from datetime import timedelta, timezone
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from domain.cause import Cause
from domain.errors import InvalidInput, InvalidTransition, NotFound
from domain.hive import Hive
from domain.keys import ApiKey, KeyState, Role, hash_secret, parse_token, secret_matches
from tests.clock import T0, FakeClock

ROOT = Cause("root", "req-1")

# ApiKey.Issued and .Revoked exactly as the code before class_version 2 stored them
# (captured from it).
V1_KEY_ID = UUID("0f0e0d0c-0b0a-4908-8706-050403020101")
V1_ISSUED = (
    b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-02T03:04:05+00:00"},'
    b'"originator_topic":"domain.keys:ApiKey","actor":"root","request_id":"req-1",'
    b'"principal":"alice","role":"client","secret_hash":'
    b'"5a90063288c04e4df59164f25bacb191f42f8f7e11b127030cb01fffd22af956","bot_id":null}'
)
V1_REVOKED = (
    b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-02T03:04:05+00:00"},'
    b'"actor":"root","request_id":"req-2"}'
)


def test_a_key_issued_by_the_old_code_still_loads_named_after_its_principal(hive: Hive) -> None:
    hive.recorder.insert_events([StoredEvent(V1_KEY_ID, 1, "domain.keys:ApiKey.Issued", V1_ISSUED)])
    key = hive.get(ApiKey, V1_KEY_ID)
    assert (key.name, key.principal, key.role, key.issued_by) == (
        "alice",
        "alice",
        "client",
        "root",
    )
    assert key.expires_at is None and key.replaces is None
    assert secret_matches(key, "the-secret")
    assert key.state(T0 + timedelta(days=10_000)) is KeyState.ACTIVE
    hive.recorder.insert_events(
        [StoredEvent(V1_KEY_ID, 2, "domain.keys:ApiKey.Revoked", V1_REVOKED)]
    )
    revoked = hive.get(ApiKey, V1_KEY_ID)
    assert revoked.state(T0) is KeyState.REVOKED
    assert (revoked.revoked_by, revoked.replaced_by) == ("root", None)


def test_a_key_has_a_name_a_creator_a_creation_time_and_an_optional_expiry(
    hive: Hive, clock: FakeClock
) -> None:
    plain = hive.keys.issue("ci-pipeline", Role.CLIENT, ROOT).key
    assert (plain.name, plain.principal, plain.issued_by) == ("ci-pipeline", "ci-pipeline", "root")
    assert plain.created_on == T0 and plain.expires_at is None
    berlin = timezone(timedelta(hours=1))
    expiry = (T0 + timedelta(days=30)).astimezone(berlin)
    expiring = hive.keys.issue("temp", Role.ADMIN, ROOT, expires_at=expiry, principal="ops").key
    stored = hive.get(ApiKey, expiring.id)
    assert (stored.name, stored.principal) == ("temp", "ops")
    assert stored.expires_at == expiry and stored.expires_at.utcoffset() == timedelta(0)


def test_an_expired_key_is_no_longer_usable(hive: Hive) -> None:
    key = hive.keys.issue("temp", Role.CLIENT, ROOT, expires_at=T0 + timedelta(hours=1)).key
    assert key.usable(T0 + timedelta(minutes=59)) and key.state(T0) is KeyState.ACTIVE
    assert not key.usable(T0 + timedelta(hours=1))
    assert key.state(T0 + timedelta(hours=1)) is KeyState.EXPIRED


@pytest.mark.parametrize(
    ("expires_at", "message"),
    [
        (T0, "in the future"),
        (T0 - timedelta(seconds=1), "in the future"),
        (T0.replace(tzinfo=None) + timedelta(days=1), "time zone offset"),
        (T0 + timedelta(days=3661), "at most 3660 days"),
    ],
)
def test_an_expiry_in_the_past_naive_or_too_far_is_refused(
    hive: Hive, expires_at: object, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        hive.keys.issue("temp", Role.CLIENT, ROOT, expires_at=expires_at)  # type: ignore[arg-type]
    assert hive.recorder.max_notification_id() in (None, 0)


def test_a_key_name_is_a_short_name(hive: Hive) -> None:
    with pytest.raises(InvalidInput, match="key name"):
        hive.keys.issue("Not A Name", Role.CLIENT, ROOT, principal="alice")


def test_a_key_is_revoked_once(hive: Hive) -> None:
    key = hive.keys.issue("alice", Role.CLIENT, ROOT).key
    hive.keys.revoke(key.id, ROOT)
    with pytest.raises(InvalidTransition, match="already revoked"):
        hive.keys.revoke(key.id, ROOT)


def test_rotation_issues_the_same_key_anew_and_revokes_the_old_in_one_save(
    hive: Hive, clock: FakeClock
) -> None:
    expiry = T0 + timedelta(days=7)
    old = hive.keys.issue("deploy", Role.ADMIN, ROOT, expires_at=expiry, principal="ops").key
    before = hive.recorder.max_notification_id()
    clock.advance(60)
    issued, revoked = hive.keys.rotate(old.id, Cause("ops", "req-2"))
    new = hive.get(ApiKey, issued.key.id)
    assert (new.name, new.principal, new.role, new.expires_at) == ("deploy", "ops", "admin", expiry)
    assert new.replaces == old.id and new.issued_by == "ops" and new.created_on == clock.now
    assert revoked.id == old.id and hive.get(ApiKey, old.id).replaced_by == new.id
    assert hive.get(ApiKey, old.id).state(clock.now) is KeyState.REVOKED
    parsed = parse_token(issued.token)
    assert parsed is not None and parsed[0] == new.id
    assert new.secret_hash == hash_secret(parsed[1]) != old.secret_hash
    assert issued.position == hive.recorder.max_notification_id() == (before or 0) + 2


def test_only_a_working_key_that_is_no_bots_own_is_rotated(hive: Hive, clock: FakeClock) -> None:
    revoked = hive.keys.issue("gone", Role.CLIENT, ROOT).key
    hive.keys.revoke(revoked.id, ROOT)
    expiring = hive.keys.issue("soon", Role.CLIENT, ROOT, expires_at=T0 + timedelta(hours=1)).key
    _, bot_key, _ = hive.fleet.register(
        name="b1", capabilities=["code"], max_concurrency=1, version_label="1", cause=ROOT
    )
    clock.advance(3600)
    before = hive.recorder.max_notification_id()
    for key_id, message in (
        (revoked.id, "key is revoked"),
        (expiring.id, "key is expired"),
        (bot_key.key.id, "registering the bot again"),
    ):
        with pytest.raises(InvalidTransition, match=message):
            hive.keys.rotate(key_id, ROOT)
    with pytest.raises(NotFound):
        hive.keys.rotate(UUID(int=7), ROOT)
    assert hive.recorder.max_notification_id() == before


def test_a_bots_own_key_is_named_after_it(hive: Hive) -> None:
    bot, issued, _ = hive.fleet.register(
        name="builder", capabilities=["code"], max_concurrency=1, version_label="1", cause=ROOT
    )
    key = hive.get(ApiKey, issued.key.id)
    assert (key.role, key.bot_id, key.issued_by) == (Role.BOT, bot.id, "root")
    assert key.name == "builder"
