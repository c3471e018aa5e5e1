"""Liveness and readiness probes: the only endpoints that need no key."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request

from api.container import container_of
from api.errors import NotReady
from api.schemas.common import Health, problem_responses

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Health:
    """200 while the process serves."""
    return Health(status="ok")


@router.get("/readyz", responses=problem_responses(503))
def readyz(request: Request) -> Health:
    """200 when the database answers and the views are kept up to date; 503 otherwise."""
    checks = container_of(request).readiness.check()
    if not checks or any(v != "ok" for v in checks.values()):
        raise NotReady(checks)
    return Health(status="ready", checks=checks)
