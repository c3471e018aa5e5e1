"""The dead letters page's data: the dead tasks, newest dead first, by a filter (type,
error kind, when they died) in keyset pages. The same filter says what a bulk re-drive
takes (``api.dashboard.actions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import AwareDatetime, Field

from api.dashboard.csrf import guarded_router
from api.dashboard.session import Viewer
from api.dashboard.wiring import dashboard_reads
from api.deps import Ctx
from api.errors import invalid
from api.schemas.common import Input, ShortName, StorableText
from projections.redrive_reads import RedriveFilter

router = guarded_router()


class DeadLetterFilter(Input):
    type: ShortName | None = None
    error_kind: ShortName | None = None
    since: AwareDatetime | None = Field(default=None, description="dead at or after")
    until: AwareDatetime | None = Field(default=None, description="dead before")

    def filter(self) -> RedriveFilter:
        return RedriveFilter(("dead",), self.type, self.error_kind, self.since, self.until)


class DeadLetterPage(DeadLetterFilter):
    cursor: StorableText | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


@router.get("/data/dead-letters")
def dead_letters_data(
    query: Annotated[DeadLetterPage, Query()], _: Viewer, ctx: Ctx
) -> dict[str, Any]:
    try:
        rows, next_cursor = dashboard_reads(ctx).dead_letters(
            query.filter(), limit=query.limit, cursor=query.cursor
        )
    except ValueError as e:
        raise invalid(("query", "cursor"), "value_error", str(e)) from None
    return {"items": [dead_letter(r) for r in rows], "next_cursor": next_cursor}


def dead_letter(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["task_id"]),
        "type": row["type"],
        "priority": row["priority"],
        "attempt": row["attempt"],  # the last one: how many its last series made
        "series": row["series"],
        "error": row["error"],
        "error_kind": row["error_kind"],
        "dead_reason": row["dead_reason"],
        "bot_id": None if row["bot_id"] is None else str(row["bot_id"]),
        "submitted_at": _at(row["submitted_at"]),
        "finished_at": _at(row["finished_at"]),
    }


def _at(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()
