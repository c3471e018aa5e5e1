"""The hive's mode (``domain/modes.py``): the policy's entries, an operator's set and clear.

The first change creates the record (until then the hive is ``normal``). The policy's
entries are no-ops while an operator's mode holds, so a decision repeated by a second
engine, or made on a state that an operator just changed, changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from domain.cause import Cause
from domain.hive.kernel import Committed, Kernel
from domain.modes import MODE_ID, NORMAL, OPERATOR, POLICY, SNAPSHOT_EVERY, Cited, HiveMode


class ModeCommands:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        kernel.snapshot_every[MODE_ID] = SNAPSHOT_EVERY

    def enter(self, mode: str, reason: str, incidents: Cited, cause: Cause) -> Committed[HiveMode]:
        """The degradation policy's mode (nothing while an operator's holds)."""

        def enter(found: HiveMode | None, at: datetime) -> HiveMode | None:
            if found is None:
                if mode == NORMAL:
                    return None  # the hive is normal until told otherwise
                return HiveMode.open(mode, POLICY, reason, incidents, cause, at)
            found.enter(mode, reason, incidents, cause, at)
            return found

        return self._change(enter)

    def set(self, mode: str, reason: str, cause: Cause) -> Committed[HiveMode]:
        """An operator's mode: it holds until an operator clears it."""

        def set_(found: HiveMode | None, at: datetime) -> HiveMode:
            if found is None:
                return HiveMode.open(mode, OPERATOR, reason, [], cause, at)
            found.set(mode, reason, cause, at)
            return found

        return self._change(set_)

    def clear(self, reason: str, cause: Cause) -> Committed[HiveMode]:
        """The operator's hold ends: back to the policy's say (nothing when none holds)."""

        def clear(found: HiveMode | None, at: datetime) -> HiveMode | None:
            if found is not None:
                found.clear(reason, cause, at)
            return found

        return self._change(clear)

    def current(self) -> HiveMode | None:
        """From the log (None: never changed, so ``normal``)."""
        return self.kernel.load_many(HiveMode, [MODE_ID]).get(MODE_ID)

    def _change(self, decide: Any) -> Committed[HiveMode]:
        def each(found: dict[UUID, Any], at: datetime) -> list[HiveMode]:
            changed = decide(found.get(MODE_ID), at)
            return [changed] if changed is not None and changed.pending_events else []

        return self.kernel.execute([MODE_ID], each)
