"""Operators' actions from the dashboard: retry (re-drive) or cancel a task, re-drive the
dead letters a filter finds, drain, quarantine or reinstate a bot.

Admin sessions only (``AdminViewer``: 403 for a client's; these are an operator's
tools, though the API lets a client key cancel a task); each request comes from the
dashboard's own pages (its Origin) and carries the session's CSRF token
(``api.dashboard.session``: 403 otherwise). Each calls the same hive
command as the API, stamped with the signed-in key's principal, so the log says who did
it from where (the request id). The page asks for confirmation first; a bulk re-drive's
confirmation shows how many tasks it takes (a dry run of the same filter).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, StringConstraints

from api.dashboard.csrf import guarded_router
from api.dashboard.dead_letters import DeadLetterFilter
from api.dashboard.session import AdminViewer
from api.deps import Ctx, RequestId
from api.schemas.common import NO_REASON, Input, problem_responses
from domain.bots import BotState

REDRIVEN_AT_ONCE = 500  # the most one bulk re-drive takes (its dry run says when more match)

router = guarded_router()
Reason = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=1000)]
REFUSED = problem_responses(401, 403, 404, 409, 422)


class Because(Input):
    reason: Reason = NO_REASON


class Redrive(DeadLetterFilter):
    reason: Reason = NO_REASON
    limit: int = Field(default=REDRIVEN_AT_ONCE, ge=1, le=REDRIVEN_AT_ONCE)
    dry_run: bool = False


@router.post("/actions/tasks/{task_id}/retry", responses=REFUSED)
def retry_task(
    task_id: UUID, admin: AdminViewer, rid: RequestId, ctx: Ctx, body: Because | None = None
) -> dict[str, Any]:
    """A new series of attempts for a failed, dead or cancelled task (409 otherwise)."""
    why = (body or Because()).reason
    committed = ctx.hive.tasks.redrive([task_id], why, admin.cause(rid))
    return _task_done(committed.items[0], ctx.position_after(committed))


@router.post("/actions/tasks/{task_id}/cancel", responses=REFUSED)
def cancel_task(
    task_id: UUID, admin: AdminViewer, rid: RequestId, ctx: Ctx, body: Because | None = None
) -> dict[str, Any]:
    why = (body or Because()).reason
    committed = ctx.hive.tasks.cancel(task_id, why, admin.cause(rid))
    return _task_done(committed.items[0], ctx.position_after(committed))


@router.post("/actions/dead-letters/redrive", responses=problem_responses(401, 403, 422))
def redrive_dead_letters(
    body: Redrive, admin: AdminViewer, rid: RequestId, ctx: Ctx
) -> dict[str, Any]:
    """The dead letters ``body``'s filter finds, as ``POST /v1/tasks/redrive`` finds them
    (the oldest dead first), at most ``limit``: with ``dry_run``, how many (and whether
    more match); else re-driven, one event each (those re-driven meanwhile are passed
    over)."""
    found = ctx.redrive.find(body.filter(), body.limit + 1)
    taken = found[: body.limit]
    if body.dry_run:
        return {"count": len(taken), "more": len(found) > body.limit}
    committed = ctx.hive.tasks.redrive_found(taken, body.reason, admin.cause(rid))
    return {"redriven": len(committed.items), "position": ctx.position_after(committed)}


@router.post("/actions/bots/{bot_id}/drain", responses=REFUSED)
def drain_bot(
    bot_id: UUID, admin: AdminViewer, rid: RequestId, ctx: Ctx, body: Because | None = None
) -> dict[str, Any]:
    why = (body or Because()).reason
    committed = ctx.hive.fleet.drain([bot_id], why, admin.cause(rid))
    return _bot_done(bot_id, BotState.DRAINING, committed.position)


@router.post("/actions/bots/{bot_id}/quarantine", responses=REFUSED)
def quarantine_bot(
    bot_id: UUID, admin: AdminViewer, rid: RequestId, ctx: Ctx, body: Because | None = None
) -> dict[str, Any]:
    why = (body or Because()).reason
    committed = ctx.hive.fleet.quarantine(bot_id, why, admin.cause(rid))
    return _bot_done(bot_id, BotState.QUARANTINED, committed.position)


@router.post("/actions/bots/{bot_id}/reinstate", responses=REFUSED)
def reinstate_bot(bot_id: UUID, admin: AdminViewer, rid: RequestId, ctx: Ctx) -> dict[str, Any]:
    committed = ctx.hive.fleet.reinstate(bot_id, admin.cause(rid))
    return _bot_done(bot_id, BotState.READY, committed.position)


def _task_done(task: Any, position: int | None) -> dict[str, Any]:
    return {"task_id": str(task.id), "state": str(task.state), "position": position}


def _bot_done(bot_id: UUID, state: BotState, position: int | None) -> dict[str, Any]:
    return {"bot_id": str(bot_id), "state": str(state), "position": position}
