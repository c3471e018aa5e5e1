"""Bots: register, heartbeat, claim, report (start, complete, fail), deregister; the fleet."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from api.container import Container
from api.deps import Admin, BotSelf, BotSelfOrAdmin, Client, Ctx, Enrolment, RequestId
from api.errors import invalid
from api.schemas.bots import (
    BotDeregistered,
    BotListQuery,
    BotPublic,
    BotRegister,
    BotRegistered,
    BotsPublic,
    BotStateChange,
    BotStateChanged,
    ClaimedTaskPublic,
    ClaimRequest,
    ClaimResponse,
    CompleteItems,
    FailItems,
    Heartbeat,
    HeartbeatAck,
    ReportAccepted,
    StartItems,
)
from api.schemas.common import NO_REASON, problem_responses
from domain.bots import Bot, BotState
from domain.errors import NotFound
from domain.hive import Committed, Report
from domain.tasks import Task

CONFIG_VERSION_HEADER = "Apiary-Config-Version"
router = APIRouter(prefix="/v1/bots", tags=["bots"], responses=problem_responses(401, 403, 503))
REPORT_PROBLEMS = problem_responses(400, 404, 409, 413, 422)


@router.post("", status_code=201, responses=problem_responses(400, 422))
def register_bot(
    body: BotRegister, principal: Enrolment, request_id: RequestId, ctx: Ctx, response: Response
) -> BotRegistered:
    bot, issued, _ = ctx.hive.fleet.register(
        name=body.name,
        capabilities=body.capabilities,
        max_concurrency=body.max_concurrency,
        version_label=body.version,
        cause=principal.cause(request_id),
        pool=body.pool,
        launch_id=body.launch_id,
        takes_messages=body.takes_messages,
    )
    settings = ctx.settings
    ctx.liveness.renew(bot.id, settings.bot_lease_ttl_s)
    response.headers["Cache-Control"] = "no-store"  # the body carries a secret
    return BotRegistered(
        bot_id=bot.id,
        token=issued.token,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        lease_ttl_s=settings.bot_lease_ttl_s,
        config_version=ctx.config_version(),
    )


@router.post("/{bot_id}/heartbeat", responses=problem_responses(400, 404, 409, 422))
def heartbeat(bot_id: UUID, _: BotSelf, ctx: Ctx, body: Heartbeat | None = None) -> HeartbeatAck:
    """Renews the lease; the answer carries the config in force (interval, lease)."""
    if not ctx.presence.is_live(bot_id):  # gone, or registered elsewhere a moment ago:
        ctx.hive.get(Bot, bot_id).check_live()  # the log says which (409: register again)
    settings, version = ctx.settings, ctx.config_version()
    said = body.config_version if body is not None else None
    return HeartbeatAck(
        lease_expires_at=ctx.liveness.renew(bot_id, settings.bot_lease_ttl_s, said),
        config_version=version,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        lease_ttl_s=settings.bot_lease_ttl_s,
    )


@router.post("/{bot_id}/claim", responses=problem_responses(400, 422))
async def claim(
    bot_id: UUID, body: ClaimRequest, _: BotSelf, ctx: Ctx, response: Response
) -> ClaimResponse:
    """Waits up to ``wait_s`` for assignments. A new config version ends every wait at
    once; the answer's ``Apiary-Config-Version`` header says which version is in force, and
    a bot behind it heartbeats to take it (the heartbeat's answer carries its knobs)."""
    wait_s = min(body.wait_s, ctx.settings.claim_max_wait_s)
    claimed = await ctx.claims.claim(bot_id, body.max_tasks, wait_s)
    response.headers[CONFIG_VERSION_HEADER] = str(ctx.config_version())
    return ClaimResponse(tasks=[ClaimedTaskPublic.from_claimed(t) for t in claimed])


@router.post("/{bot_id}/start", responses=REPORT_PROBLEMS)
def start_tasks(
    bot_id: UUID, body: StartItems, principal: BotSelf, request_id: RequestId, ctx: Ctx
) -> ReportAccepted:
    reports = body.to_reports(ctx.settings)
    return _accepted(
        reports, ctx.hive.tasks.start(bot_id, reports, principal.cause(request_id)), ctx
    )


@router.post("/{bot_id}/complete", responses=REPORT_PROBLEMS)
def complete_tasks(
    bot_id: UUID, body: CompleteItems, principal: BotSelf, request_id: RequestId, ctx: Ctx
) -> ReportAccepted:
    reports = body.to_reports(ctx.settings)
    return _accepted(
        reports, ctx.hive.tasks.finish(bot_id, reports, principal.cause(request_id)), ctx
    )


@router.post("/{bot_id}/fail", responses=REPORT_PROBLEMS)
def fail_tasks(
    bot_id: UUID, body: FailItems, principal: BotSelf, request_id: RequestId, ctx: Ctx
) -> ReportAccepted:
    reports = body.to_reports(ctx.settings)
    return _accepted(
        reports, ctx.hive.tasks.finish(bot_id, reports, principal.cause(request_id)), ctx
    )


@router.delete("/{bot_id}", responses=problem_responses(404, 422))
def deregister_bot(
    bot_id: UUID, principal: BotSelfOrAdmin, request_id: RequestId, ctx: Ctx
) -> BotDeregistered:
    committed = ctx.hive.fleet.deregister(bot_id, principal.cause(request_id))
    ctx.liveness.forget(bot_id)
    return BotDeregistered(
        bot_id=bot_id, state=str(BotState.DEREGISTERED), position=ctx.position_after(committed)
    )


@router.post("/{bot_id}/drain", responses=problem_responses(404, 409, 422))
def drain_bot(
    bot_id: UUID,
    principal: Admin,
    request_id: RequestId,
    ctx: Ctx,
    body: BotStateChange | None = None,
) -> BotStateChanged:
    """No new work for this bot; it finishes what it holds. The body (a reason) may be
    left out."""
    reason = NO_REASON if body is None else body.reason
    committed = ctx.hive.fleet.drain([bot_id], reason, principal.cause(request_id))
    return BotStateChanged(bot_id=bot_id, state=str(BotState.DRAINING), position=committed.position)


@router.post("/{bot_id}/quarantine", responses=problem_responses(404, 409, 422))
def quarantine_bot(
    bot_id: UUID,
    principal: Admin,
    request_id: RequestId,
    ctx: Ctx,
    body: BotStateChange | None = None,
) -> BotStateChanged:
    """No new work for this bot until it is reinstated. The body (a reason) may be left
    out."""
    reason = NO_REASON if body is None else body.reason
    committed = ctx.hive.fleet.quarantine(bot_id, reason, principal.cause(request_id))
    return BotStateChanged(
        bot_id=bot_id, state=str(BotState.QUARANTINED), position=committed.position
    )


@router.post("/{bot_id}/reinstate", responses=problem_responses(404, 409, 422))
def reinstate_bot(
    bot_id: UUID, principal: Admin, request_id: RequestId, ctx: Ctx
) -> BotStateChanged:
    committed = ctx.hive.fleet.reinstate(bot_id, principal.cause(request_id))
    return BotStateChanged(bot_id=bot_id, state=str(BotState.READY), position=committed.position)


@router.get("", responses=problem_responses(422))
def list_bots(query: Annotated[BotListQuery, Query()], _: Client, ctx: Ctx) -> BotsPublic:
    """Live bots by default (``?state=`` for the others), in registration order, keyset
    paged like the tasks."""
    try:
        rows, next_cursor = ctx.fleet.list(query.filter(), limit=query.limit, cursor=query.cursor)
    except ValueError as e:
        raise invalid(("query", "cursor"), "value_error", str(e)) from None
    return BotsPublic(items=[BotPublic.from_row(r) for r in rows], next_cursor=next_cursor)


@router.get("/{bot_id}", responses=problem_responses(404, 422))
def get_bot(bot_id: UUID, _: Client, ctx: Ctx) -> BotPublic:
    row = ctx.fleet.get(bot_id)
    if row is None:
        raise NotFound(f"no bot {bot_id}", id=bot_id)
    return BotPublic.from_row(row)


def _accepted(reports: list[Report], committed: Committed[Task], ctx: Container) -> ReportAccepted:
    return ReportAccepted(
        tasks=[r.task_id for r in reports], position=ctx.position_after(committed)
    )
