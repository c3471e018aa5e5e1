"""Schedules: create, read, list, pause, resume, delete."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from api.deps import Client, Ctx, RequestId
from api.errors import invalid
from api.schemas.common import problem_responses
from api.schemas.schedules import (
    ScheduleCreate,
    ScheduleListQuery,
    SchedulePublic,
    SchedulesPublic,
)
from domain.errors import NotFound

READ_YOUR_WRITES_S = 5.0

router = APIRouter(
    prefix="/v1/schedules", tags=["schedules"], responses=problem_responses(401, 403, 422, 503)
)


@router.post("", status_code=201, responses=problem_responses(400, 413))
def create_schedule(
    body: ScheduleCreate, principal: Client, request_id: RequestId, ctx: Ctx, response: Response
) -> SchedulePublic:
    spec = body.to_spec(ctx.settings.max_payload_bytes)
    committed = ctx.hive.schedules.create(spec, principal.cause(request_id))
    schedule = committed.items[0]
    response.headers["Location"] = f"{router.prefix}/{schedule.id}"
    return SchedulePublic.from_schedule(schedule, ctx.position_after(committed))


@router.get("")
def list_schedules(
    query: Annotated[ScheduleListQuery, Query()], _: Client, ctx: Ctx
) -> SchedulesPublic:
    state = str(query.state) if query.state is not None else None
    try:
        rows, next_cursor = ctx.schedules.list(state, limit=query.limit, cursor=query.cursor)
    except ValueError as e:
        raise invalid(("query", "cursor"), "value_error", str(e)) from None
    return SchedulesPublic(
        items=[SchedulePublic.from_row(r) for r in rows], next_cursor=next_cursor
    )


@router.get("/{schedule_id}", responses=problem_responses(404))
def get_schedule(
    schedule_id: UUID,
    _: Client,
    ctx: Ctx,
    min_position: Annotated[
        int | None,
        Query(ge=0, description="wait (up to 5 s) until the view has applied this position"),
    ] = None,
) -> SchedulePublic:
    if min_position is not None:
        ctx.schedule_positions.wait(min_position, READ_YOUR_WRITES_S)
    row = ctx.schedules.get(schedule_id)
    if row is None:
        raise NotFound(f"no schedule {schedule_id}", id=schedule_id)
    return SchedulePublic.from_row(row)


@router.post("/{schedule_id}/pause", responses=problem_responses(404, 409))
def pause_schedule(
    schedule_id: UUID, principal: Client, request_id: RequestId, ctx: Ctx
) -> SchedulePublic:
    committed = ctx.hive.schedules.pause(schedule_id, principal.cause(request_id))
    return SchedulePublic.from_schedule(committed.items[0], ctx.position_after(committed))


@router.post("/{schedule_id}/resume", responses=problem_responses(404, 409))
def resume_schedule(
    schedule_id: UUID, principal: Client, request_id: RequestId, ctx: Ctx
) -> SchedulePublic:
    committed = ctx.hive.schedules.resume(schedule_id, principal.cause(request_id))
    return SchedulePublic.from_schedule(committed.items[0], ctx.position_after(committed))


@router.delete("/{schedule_id}", responses=problem_responses(404, 409))
def delete_schedule(
    schedule_id: UUID, principal: Client, request_id: RequestId, ctx: Ctx
) -> SchedulePublic:
    committed = ctx.hive.schedules.delete(schedule_id, principal.cause(request_id))
    return SchedulePublic.from_schedule(committed.items[0], ctx.position_after(committed))
