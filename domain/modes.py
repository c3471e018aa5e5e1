"""The hive's mode: one record in the log of how much the hive is asked to do.

``normal``, ``degraded``, ``critical`` or ``maintenance``, with who set it (the degradation
policy, ``engine:modes``, or an operator), why, since when, and the incidents that caused
it (their ids and rules). An operator's mode *holds*: the policy's entries are no-ops until
the operator clears it, which hands the hive back to the policy at ``normal`` (the policy
enters what its incidents call for on its next round). Every process follows these events
(``runtime/live_mode.py``), so two processes never disagree for longer than the feed's
latency. Long-lived: snapshotted every ``SNAPSHOT_EVERY`` versions.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput

MODE_ID = uuid5(UUID("0e6f7a58-5c1b-4f3e-9d2a-1b7c8e9f0a3d"), "hive-mode")
SNAPSHOT_EVERY = 50
MAX_REASON = 500

NORMAL, DEGRADED, CRITICAL, MAINTENANCE = "normal", "degraded", "critical", "maintenance"
MODES = (NORMAL, DEGRADED, CRITICAL, MAINTENANCE)
POLICY, OPERATOR = "policy", "operator"

Cited = list[dict[str, str]]  # the incidents behind a mode: {"incident_id", "rule"}


class HiveMode(HiveAggregate):
    """Created by its first change (before it, the hive is ``normal`` by the policy)."""

    class Opened(HiveAggregate.Created):
        mode: str
        set_by: str
        reason: str
        incidents: Cited

    class Entered(HiveAggregate.Event):
        """The policy moved the hive into ``mode`` for these incidents (empty: calm)."""

        mode: str
        reason: str
        incidents: Cited

        def apply(self, hive_mode: HiveMode) -> None:
            hive_mode._take(self.mode, POLICY, self.reason, self.incidents, self.timestamp)

    class Set(HiveAggregate.Event):
        """An operator's mode: it holds until an operator clears it."""

        mode: str
        reason: str

        def apply(self, hive_mode: HiveMode) -> None:
            hive_mode._take(self.mode, OPERATOR, self.reason, [], self.timestamp)

    class Cleared(HiveAggregate.Event):
        """The operator's hold ends: ``normal``, the policy's to change again."""

        reason: str

        def apply(self, hive_mode: HiveMode) -> None:
            hive_mode._take(NORMAL, POLICY, self.reason, [], self.timestamp)

    def __init__(self, mode: str, set_by: str, reason: str, incidents: Cited) -> None:
        self.mode, self.set_by, self.reason = mode, set_by, reason
        self.incidents = list(incidents)
        self.changed_at: datetime | None = None  # None: as opened (``created_on``)

    def _take(self, mode: str, set_by: str, reason: str, incidents: Cited, at: datetime) -> None:
        self.mode, self.set_by, self.reason = mode, set_by, reason
        self.incidents, self.changed_at = list(incidents), at

    @property
    def since(self) -> datetime:
        return self.changed_at or self.created_on

    @property
    def held(self) -> bool:
        """An operator's mode, which the policy may not change."""
        return self.set_by == OPERATOR

    @classmethod
    def open(
        cls, mode: str, set_by: str, reason: str, incidents: Cited, cause: Cause, at: datetime
    ) -> HiveMode:
        _check(mode, reason)
        return cls._open(
            cls.Opened,
            id=MODE_ID,
            cause=cause,
            at=at,
            mode=mode,
            set_by=set_by,
            reason=reason,
            incidents=incidents,
        )

    def enter(self, mode: str, reason: str, incidents: Cited, cause: Cause, at: datetime) -> None:
        """The policy's say: nothing while an operator's mode holds or already in ``mode``."""
        _check(mode, reason)
        if self.held or mode == self.mode:
            return
        self._record(self.Entered, cause, at, mode=mode, reason=reason, incidents=incidents)

    def set(self, mode: str, reason: str, cause: Cause, at: datetime) -> None:
        """An operator's mode (the same one again, with a new reason, is recorded too)."""
        _check(mode, reason)
        self._record(self.Set, cause, at, mode=mode, reason=reason)

    def clear(self, reason: str, cause: Cause, at: datetime) -> None:
        """Back to the policy's say; nothing when no operator's mode holds."""
        _check(NORMAL, reason)
        if self.held:
            self._record(self.Cleared, cause, at, reason=reason)


def rank(mode: str) -> int:
    """How much a mode holds back: the policy moves up at once and down with hysteresis."""
    return {NORMAL: 0, DEGRADED: 1, CRITICAL: 2}.get(mode, 3)


def _check(mode: str, reason: str) -> None:
    if mode not in MODES:
        raise InvalidInput(f"mode: one of {', '.join(MODES)}", field="mode")
    if not reason.strip() or len(reason) > MAX_REASON or "\x00" in reason:
        raise InvalidInput(f"reason: 1..{MAX_REASON} characters, no NUL", field="reason")
