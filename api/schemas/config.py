"""The runtime configuration over HTTP: the document, a change, a rollback, the history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, ValidationError

from api.errors import invalid_all
from api.schemas.common import Input, Model
from domain.config import HiveConfig
from domain.hive.config import ConfigVersion
from runtime.config import Knobs

Reason = Annotated[
    str,
    Field(min_length=1, max_length=500, description="why: kept with the version, shown in history"),
]


def valid_document(document: dict[str, Any], loc: tuple[str | int, ...]) -> Knobs:
    """The document as the knobs it sets; 422 naming every field that is wrong."""
    try:
        return Knobs.model_validate(document)
    except ValidationError as e:
        raise invalid_all(
            [((*loc, *err["loc"]), err["type"], err["msg"]) for err in e.errors()]
        ) from None


class ConfigPublic(Model):
    version: int
    document: dict[str, Any]
    actor: str
    reason: str
    changed_at: datetime

    @classmethod
    def of(cls, config: HiveConfig) -> ConfigPublic:
        """The version in force."""
        return cls(
            version=config.version,
            document=json.loads(config.document),
            actor=config.changed_by,
            reason=config.reason,
            changed_at=config.modified_on,
        )

    @classmethod
    def of_version(cls, v: ConfigVersion) -> ConfigPublic:
        """One version, as it was written."""
        return cls(
            version=v.version,
            document=json.loads(v.document),
            actor=v.actor,
            reason=v.reason,
            changed_at=v.at,
        )


class ConfigReplace(Input):
    """A whole new document (every knob; those left out take their defaults)."""

    document: dict[str, Any]
    reason: Reason


class ConfigPatch(Input):
    """Some knobs, by name, set to new values; the others stay as they are."""

    changes: dict[str, Any] = Field(min_length=1, max_length=100)
    reason: Reason


class ConfigRollback(Input):
    version: int = Field(ge=1, description="the version whose document is to be in force again")
    reason: Reason


class ConfigChange(Model):
    """A path whose value changed, from what to what."""

    path: str
    before: Any = None
    after: Any = None


class ConfigVersionPublic(Model):
    version: int
    actor: str
    reason: str
    at: datetime
    restores: int | None
    changes: list[ConfigChange]

    @classmethod
    def of(
        cls, v: ConfigVersion, before: dict[str, Any] | None, after: dict[str, Any]
    ) -> ConfigVersionPublic:
        changes = [
            ConfigChange(path=p, before=_at(before, p), after=_at(after, p))
            for p in (v.changed if before is not None else sorted(after))
        ]
        return cls(
            version=v.version,
            actor=v.actor,
            reason=v.reason,
            at=v.at,
            restores=v.restores,
            changes=changes,
        )


class ConfigHistory(Model):
    items: list[ConfigVersionPublic]


def history_of(versions: Sequence[ConfigVersion], limit: int) -> list[ConfigVersionPublic]:
    """The newest ``limit`` of ``versions`` (oldest first, as ``hive.config.versions()``
    gives them), newest first, each with what changed from the version before it. Give it
    ``limit + 1`` versions (``versions(latest=limit + 1)``): the one before the oldest shown
    is what that one is compared with."""
    start = max(len(versions) - limit, 0)
    before = json.loads(versions[start - 1].document) if start else None
    items = []
    for v in versions[start:]:
        after = json.loads(v.document)
        items.append(ConfigVersionPublic.of(v, before, after))
        before = after
    return items[::-1]


def _at(document: dict[str, Any] | None, path: str) -> Any:
    """The value at a dotted path (``pools[0].max_bots``), or None where there is none."""
    value: Any = document
    for part in path.replace("]", "").replace("[", ".").split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value
