"""The hive's own processes (api and engine roles): alive, what they lead, which config."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Client, Ctx
from api.schemas.common import problem_responses
from api.schemas.processes import ProcessesPublic, ProcessPublic
from store.processes import health_of

router = APIRouter(
    prefix="/v1/processes", tags=["processes"], responses=problem_responses(401, 403, 503)
)


@router.get("")
def list_processes(_: Client, ctx: Ctx) -> ProcessesPublic:
    """Every process heard from in the last few seconds, oldest first, and the hive's
    checks drawn from them (the same as readiness shows)."""
    rows = ctx.processes.live()
    return ProcessesPublic(items=[ProcessPublic.from_row(r) for r in rows], checks=health_of(rows))
