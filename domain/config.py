"""The hive's runtime configuration: one versioned document in the log.

Every version is a whole document (canonical JSON text, validated by the caller against the
document's schema before it gets here), with who changed it, why, and what changed (the
paths whose values differ from the version before). A change names the version it was made
against (``If-Match``): a stale one is refused, so two writers never overwrite each other.
A rollback writes an old document back as a new version. Long-lived: snapshotted every
``SNAPSHOT_EVERY`` versions (see ``domain.hive.kernel``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput, StaleVersion

CONFIG_ID = uuid5(UUID("0e6f7a58-5c1b-4f3e-9d2a-1b7c8e9f0a3d"), "hive-config")
SNAPSHOT_EVERY = 50
MAX_REASON = 500


class HiveConfig(HiveAggregate):
    class Seeded(HiveAggregate.Created):
        document: str
        reason: str

    class Changed(HiveAggregate.Event):
        document: str
        reason: str
        changed: list[str]  # the paths whose values differ from the version before
        restores: int | None  # a rollback: the version whose document this is again

        def apply(self, config: HiveConfig) -> None:
            config.document, config.reason, config.changed_by = (
                self.document,
                self.reason,
                self.actor,
            )

    def __init__(self, document: str, reason: str, actor: str) -> None:
        self.document = document
        self.reason = reason
        self.changed_by = actor

    @classmethod
    def seed(cls, document: str, reason: str, cause: Cause, at: datetime) -> HiveConfig:
        _check_reason(reason)
        return cls._open(
            cls.Seeded, id=CONFIG_ID, cause=cause, at=at, document=document, reason=reason
        )

    def change(
        self,
        document: str,
        expected_version: int,
        reason: str,
        cause: Cause,
        at: datetime,
        *,
        restores: int | None = None,
    ) -> None:
        """A new version, unless the document is the same (then nothing happens)."""
        if expected_version != self.version:
            raise StaleVersion(
                f"the config is at version {self.version}, not {expected_version}",
                current=self.version,
            )
        _check_reason(reason)
        changed = changed_paths(json.loads(self.document), json.loads(document))
        if not changed:
            return
        self._record(
            self.Changed,
            cause,
            at,
            document=document,
            reason=reason,
            changed=changed,
            restores=restores,
        )


def changed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted paths (list items by index) whose values differ between two documents."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for key in sorted(before.keys() | after.keys()):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in before or key not in after:
                out.append(path)
            else:
                out += changed_paths(before[key], after[key], path)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            p
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for p in changed_paths(b, a, f"{prefix}[{i}]")
        ]
    return [] if before == after else [prefix or "."]


def _check_reason(reason: str) -> None:
    if not reason.strip() or len(reason) > MAX_REASON or "\x00" in reason:
        raise InvalidInput(f"reason: 1..{MAX_REASON} characters, no NUL", field="reason")
