"""The operations area's first tenant: the runtime configuration, versioned in the log.

Seeded once (from the environment of the first process that finds none), then changed
against the version it was read at, and rolled back by writing an old version's document
as a new version. The caller validates documents against their schema; the aggregate
keeps versions, authors, reasons and what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.cause import Cause
from domain.config import CONFIG_ID, SNAPSHOT_EVERY, HiveConfig
from domain.errors import NotFound
from domain.hive.kernel import Committed, Kernel


@dataclass(frozen=True)
class ConfigVersion:
    """One version as the log has it."""

    version: int
    document: str
    actor: str
    request_id: str
    reason: str
    at: datetime
    changed: list[str]
    restores: int | None


class ConfigCommands:
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        kernel.snapshot_every[CONFIG_ID] = SNAPSHOT_EVERY

    def seed(self, document: str, reason: str, cause: Cause) -> Committed[HiveConfig]:
        """The first version, unless there is one already (then nothing is written)."""

        def seed(found: dict[UUID, Any], at: datetime) -> list[HiveConfig]:
            if CONFIG_ID in found:
                return []
            return [HiveConfig.seed(document, reason, cause, at)]

        return self.kernel.execute([CONFIG_ID], seed, fresh=True)

    def change(
        self, document: str, expected_version: int, reason: str, cause: Cause
    ) -> Committed[HiveConfig]:
        return self.kernel.change(
            HiveConfig,
            [CONFIG_ID],
            lambda c, at: c.change(document, expected_version, reason, cause, at),
        )

    def rollback(
        self, to_version: int, expected_version: int, reason: str, cause: Cause
    ) -> Committed[HiveConfig]:
        """Write version ``to_version``'s document back, as a new version."""
        old = self.version(to_version)
        return self.kernel.change(
            HiveConfig,
            [CONFIG_ID],
            lambda c, at: c.change(
                old.document, expected_version, reason, cause, at, restores=to_version
            ),
        )

    def current(self) -> HiveConfig:
        return self.kernel.get(HiveConfig, CONFIG_ID)

    def versions(self, *, latest: int | None = None) -> list[ConfigVersion]:
        """Every version (only the ``latest`` ones, when given), oldest first, from the log."""
        out = []
        for e in self.kernel.history(CONFIG_ID, latest=latest):
            changed = list(getattr(e, "changed", []))
            out.append(
                ConfigVersion(
                    e.originator_version,
                    e.document,
                    e.actor,
                    e.request_id,
                    e.reason,
                    e.timestamp,
                    changed,
                    getattr(e, "restores", None),
                )
            )
        return out

    def version(self, number: int) -> ConfigVersion:
        for v in self.versions():
            if v.version == number:
                return v
        raise NotFound(f"no config version {number}", version=number)
