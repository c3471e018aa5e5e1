"""Tasks: submit (one or a batch), read, list, cancel, retry (one), re-drive (by a filter)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from api.deps import Admin, Client, Ctx, RequestId
from api.errors import invalid
from api.mode_gate import admit_submission
from api.schemas.common import NO_REASON, problem_responses
from api.schemas.tasks import (
    CancelRequest,
    Redriven,
    RedriveRequest,
    RetryRequest,
    TaskBatchCreate,
    TaskCreate,
    TaskDetail,
    TaskListQuery,
    TaskPublic,
    TasksPublic,
    TasksSubmitted,
    TaskSubmitted,
)
from domain.attempts import attempts
from domain.errors import NotFound

READ_YOUR_WRITES_S = 5.0

router = APIRouter(
    prefix="/v1/tasks", tags=["tasks"], responses=problem_responses(401, 403, 422, 503)
)


@router.post(
    "",
    status_code=201,
    responses={
        200: {"model": TaskPublic, "description": "a repeated idempotency key: the original task"},
        **problem_responses(400, 413),
    },
)
def submit_task(
    body: TaskCreate,
    principal: Client,
    request_id: RequestId,
    ctx: Ctx,
    request: Request,
    response: Response,
) -> TaskPublic:
    spec = body.to_spec(ctx.settings.max_payload_bytes)
    specs = admit_submission(ctx.modes, [spec], ctx.hive.clock(), request.scope.get("state"))
    committed = ctx.hive.tasks.submit(specs, principal.cause(request_id))
    submission = committed.items[0]
    response.status_code = 200 if submission.duplicate else 201
    response.headers["Location"] = f"{router.prefix}/{submission.task.id}"
    return TaskPublic.from_task(submission.task, ctx.position_after(committed))


@router.post("/batch", status_code=201, responses=problem_responses(400, 413))
def submit_tasks(
    body: TaskBatchCreate, principal: Client, request_id: RequestId, ctx: Ctx, request: Request
) -> TasksSubmitted:
    specs = admit_submission(
        ctx.modes, body.to_specs(ctx.settings), ctx.hive.clock(), request.scope.get("state")
    )
    committed = ctx.hive.tasks.submit(specs, principal.cause(request_id))
    position = ctx.position_after(committed)
    return TasksSubmitted(
        items=[
            TaskSubmitted(task=TaskPublic.from_task(s.task, position), duplicate=s.duplicate)
            for s in committed.items
        ],
        position=position,
    )


@router.get("/{task_id}", responses=problem_responses(404))
def get_task(
    task_id: UUID,
    _: Client,
    ctx: Ctx,
    min_position: Annotated[
        int | None,
        Query(ge=0, description="wait (up to 5 s) until the views have applied this position"),
    ] = None,
) -> TaskDetail:
    """The task as the tasks view has it, with its attempts from its own events up to the
    same version."""
    if min_position is not None:
        ctx.positions.wait(min_position, READ_YOUR_WRITES_S)  # late: answer with what is known
    row = ctx.tasks.get(task_id)
    if row is None:
        raise NotFound(f"no task {task_id}", id=task_id)
    if ctx.history is None:  # a composition mistake, not a request's fault
        raise RuntimeError("the log's history is not wired into this container")
    return TaskDetail.of(row, attempts(ctx.history.events(task_id, row.version)))


@router.get("")
def list_tasks(query: Annotated[TaskListQuery, Query()], _: Client, ctx: Ctx) -> TasksPublic:
    try:
        rows, next_cursor = ctx.tasks.list(query.filter(), limit=query.limit, cursor=query.cursor)
    except ValueError as e:
        raise invalid(("query", "cursor"), "value_error", str(e)) from None
    return TasksPublic(items=[TaskPublic.from_row(r) for r in rows], next_cursor=next_cursor)


@router.post("/{task_id}/cancel", responses=problem_responses(400, 404, 409))
def cancel_task(
    task_id: UUID,
    principal: Client,
    request_id: RequestId,
    ctx: Ctx,
    body: CancelRequest | None = None,
) -> TaskPublic:
    """The body (a reason) may be left out."""
    reason = NO_REASON if body is None else body.reason
    committed = ctx.hive.tasks.cancel(task_id, reason, principal.cause(request_id))
    return TaskPublic.from_task(committed.items[0], ctx.position_after(committed))


@router.post("/{task_id}/retry", responses=problem_responses(400, 404, 409))
def retry_task(
    task_id: UUID,
    principal: Client,
    request_id: RequestId,
    ctx: Ctx,
    body: RetryRequest | None = None,
) -> TaskPublic:
    """A failed, dead or cancelled task runs again: a new series of attempts, its history
    kept (409 in any other state). The body (a reason) may be left out."""
    reason = NO_REASON if body is None else body.reason
    committed = ctx.hive.tasks.redrive([task_id], reason, principal.cause(request_id))
    return TaskPublic.from_task(committed.items[0], ctx.position_after(committed))


@router.post("/redrive", responses=problem_responses(400))
def redrive_tasks(
    body: RedriveRequest, principal: Admin, request_id: RequestId, ctx: Ctx
) -> Redriven:
    """Re-drive the finished tasks a filter finds (dead ones by default), oldest finish
    first, at most ``limit``; a dry run only counts them."""
    found = ctx.redrive.find(body.filter.found(), body.capped(ctx.settings.max_batch))
    if body.dry_run:
        return Redriven(dry_run=True, count=len(found), task_ids=None, position=None)
    if not found:
        return Redriven(dry_run=False, count=0, task_ids=[], position=None)
    committed = ctx.hive.tasks.redrive_found(found, body.reason, principal.cause(request_id))
    ids = [t.id for t in committed.items]
    return Redriven(
        dry_run=False, count=len(ids), task_ids=ids, position=ctx.position_after(committed)
    )
