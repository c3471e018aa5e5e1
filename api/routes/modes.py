"""The hive's mode: anyone with a key reads it; an admin sets one (it holds) or clears it
(back to the degradation policy's say). Every process acts on it within the feed's latency."""

from __future__ import annotations

from fastapi import APIRouter

from api.container import Container
from api.deps import Admin, Client, Ctx, RequestId
from api.mode_gate import HiveModeNow
from api.schemas.common import problem_responses
from api.schemas.modes import ModeClear, ModePublic, ModeSet

router = APIRouter(prefix="/v1/mode", tags=["mode"], responses=problem_responses(401, 403, 503))


@router.get("")
def get_mode(_: Client, ctx: Ctx) -> ModePublic:
    """The mode this process acts on, and the mode as recorded (who, why, since when, the
    incidents behind it)."""
    return ModePublic.of(_modes(ctx))


@router.put("", responses=problem_responses(422))
def set_mode(body: ModeSet, principal: Admin, request_id: RequestId, ctx: Ctx) -> ModePublic:
    """An operator's mode: it holds (the policy changes nothing) until an operator clears it."""
    ctx.hive.modes.set(body.mode, body.reason, principal.cause(request_id))
    return ModePublic.of(_modes(ctx))


@router.post("/clear", responses=problem_responses(422))
def clear_mode(body: ModeClear, principal: Admin, request_id: RequestId, ctx: Ctx) -> ModePublic:
    """The operator's mode ends: normal, and the policy's again (nothing when none holds)."""
    ctx.hive.modes.clear(body.reason, principal.cause(request_id))
    return ModePublic.of(_modes(ctx))


def _modes(ctx: Container) -> HiveModeNow:
    if ctx.modes is None:  # a composition mistake, not a request's fault
        raise RuntimeError("the hive's mode is not wired into this container")
    return ctx.modes
