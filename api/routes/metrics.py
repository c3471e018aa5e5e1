"""Metrics: ``/metrics`` for Prometheus, ``/v1/metrics/stages`` for the dashboard.

Both read the views only, and take a client or an admin key, as the task and fleet reads
they summarise do (Prometheus sends the key with ``authorization: {credentials: ...}`` as
``Authorization: Bearer``); a bot's key or an enrolment key gets 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import Client, Ctx
from api.schemas.common import problem_responses
from api.schemas.metrics import StagesPublic

router = APIRouter(tags=["metrics"], responses=problem_responses(401, 403, 503))


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(_: Client, ctx: Ctx) -> Response:
    """Queue depth, tasks by state, stage latencies, the log's length, views' lag, bots."""
    return Response(ctx.metrics.render(), media_type=ctx.metrics.content_type)


@router.get("/v1/metrics/stages", responses=problem_responses(403, 422))
def stages(
    _: Client,
    ctx: Ctx,
    minutes: Annotated[
        int, Query(ge=1, le=1440, description="how many recent minutes of completions")
    ] = 15,
) -> StagesPublic:
    """Per task type and stage: count, sum and p50/p95/p99 (seconds); and completions
    per type in each of the last ``minutes`` minutes that had any."""
    return StagesPublic.build(
        ctx.stages.histograms(), ctx.stages.minutes(minutes, ctx.hive.clock())
    )
