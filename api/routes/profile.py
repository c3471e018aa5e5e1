"""The bottleneck report: ``GET /v1/profile?window=5m``. Reads the views (and the
processes' timings) at the time it is asked for; a client or an admin key, like the
metrics it draws on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Client, Ctx
from api.errors import NotReady
from api.schemas.common import problem_responses
from api.schemas.profile import ProfilePublic, ProfileQuery

router = APIRouter(tags=["profile"], responses=problem_responses(401, 403, 422, 503))


@router.get("/v1/profile")
def profile(query: Annotated[ProfileQuery, Query()], _: Client, ctx: Ctx) -> ProfilePublic:
    """Findings ranked most severe first, each with the numbers behind it; per type, pool
    and bot each stage's p50/p95/p99 and share of end to end over the window (counted by
    the minute: the window is read in whole minutes); the processes' timings."""
    if ctx.profile is None:
        raise NotReady({"profile": "this process keeps no profiler"})
    return ProfilePublic.of(ctx.profile.report(query.window))
