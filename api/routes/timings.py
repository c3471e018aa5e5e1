"""Where the hive's processes spend their time, over a recent window."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Client, Ctx
from api.schemas.common import problem_responses
from api.schemas.timings import TimingsPublic
from api.schemas.window import DEFAULT_WINDOW_S, WindowQuery

router = APIRouter(
    prefix="/v1/processes", tags=["processes"], responses=problem_responses(401, 403, 422, 503)
)


@router.get("/timings")
def process_timings(_: Client, ctx: Ctx, window: WindowQuery = DEFAULT_WINDOW_S) -> TimingsPublic:
    """Every process's timings over the minutes that overlap the window (HTTP routes,
    control loop rounds, saves, view pages: counts, p50/p95/p99, buckets), its resources,
    the hive's totals, and each view's lag now."""
    return TimingsPublic.from_window(ctx.process_stats.window(window))
