"""The hive's mode (``hive.modes``) on the in-memory recorder: the policy's entries, an
operator's hold and its clearing, what is refused, and the snapshots."""

from __future__ import annotations

import pytest

from domain.cause import Cause
from domain.errors import InvalidInput
from domain.hive import Hive
from domain.modes import MODE_ID, SNAPSHOT_EVERY, HiveMode
from tests.clock import FakeClock

POLICY = Cause.engine("modes", "round-1")
ALICE = Cause("alice", "req-1")
CASCADE = [{"incident_id": "7d1c0e49-54c4-4b8e-a4e0-6f6ad1b46a10", "rule": "cascade"}]


def events(hive: Hive) -> list[str]:
    return [type(e).__name__ for e in hive.history(MODE_ID)]


def test_the_hive_is_normal_until_a_mode_is_recorded(hive: Hive) -> None:
    assert hive.modes.current() is None
    assert hive.modes.enter("normal", "calm", [], POLICY).items == []
    assert hive.modes.clear("nothing holds", ALICE).items == []
    assert hive.recorder.max_notification_id() in (None, 0)


def test_the_policy_enters_a_mode_with_its_incidents(hive: Hive, clock: FakeClock) -> None:
    committed = hive.modes.enter("degraded", "cascade", CASCADE, POLICY)
    mode = committed.items[0]
    assert (mode.mode, mode.set_by, mode.reason, mode.incidents) == (
        "degraded",
        "policy",
        "cascade",
        CASCADE,
    )
    assert mode.since == clock() and not mode.held
    clock.advance(5)
    again = hive.modes.enter("degraded", "still", CASCADE, POLICY)
    assert again.items == []  # already in that mode
    hive.modes.enter("normal", "calm", [], POLICY)
    now = hive.modes.current()
    assert now is not None and (now.mode, now.since, now.incidents) == ("normal", clock(), [])
    assert events(hive) == ["Opened", "Entered"]


def test_an_operators_mode_holds_until_cleared(hive: Hive) -> None:
    hive.modes.enter("degraded", "cascade", CASCADE, POLICY)
    hive.modes.set("maintenance", "upgrading the database", ALICE)
    assert hive.modes.enter("critical", "database", [], POLICY).items == []
    held = hive.modes.current()
    assert held is not None and (held.mode, held.set_by, held.held) == (
        "maintenance",
        "operator",
        True,
    )
    cleared = hive.modes.clear("upgrade done", ALICE).items[0]
    assert (cleared.mode, cleared.set_by, cleared.held) == ("normal", "policy", False)
    assert hive.modes.enter("critical", "database", [], POLICY).items[0].mode == "critical"
    assert events(hive) == ["Opened", "Set", "Cleared", "Entered"]


def test_an_operator_may_set_the_first_mode_and_hold_normal(hive: Hive) -> None:
    hive.modes.set("normal", "whatever the incidents say", ALICE)
    assert hive.modes.enter("degraded", "cascade", CASCADE, POLICY).items == []
    mode = hive.modes.current()
    assert mode is not None and (mode.mode, mode.held) == ("normal", True)
    assert [e.actor for e in hive.history(MODE_ID)] == ["alice"]


@pytest.mark.parametrize(
    ("mode", "reason"), [("panic", "x"), ("degraded", " "), ("degraded", "a\x00b")]
)
def test_an_unknown_mode_or_a_bad_reason_is_refused(hive: Hive, mode: str, reason: str) -> None:
    with pytest.raises(InvalidInput):
        hive.modes.set(mode, reason, ALICE)


def test_the_mode_is_snapshotted_and_loads_the_same(hive: Hive) -> None:
    for i in range(SNAPSHOT_EVERY + 1):
        hive.modes.set("degraded" if i % 2 else "maintenance", f"turn {i}", ALICE)
    assert hive.log.snapshots is not None
    snapshots = list(hive.log.snapshots.get(MODE_ID))
    assert [s.originator_version for s in snapshots] == [SNAPSHOT_EVERY]
    hive.kernel.cache.forget([MODE_ID])
    loaded = hive.modes.current()
    assert isinstance(loaded, HiveMode)
    assert (loaded.version, loaded.mode, loaded.reason) == (
        SNAPSHOT_EVERY + 1,
        "maintenance",
        f"turn {SNAPSHOT_EVERY}",
    )
