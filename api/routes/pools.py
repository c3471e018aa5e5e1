"""Scaling pools: configured limits, the autoscaler's decisions and its launches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Client, Ctx
from api.schemas.common import StorableText, problem_responses
from api.schemas.pools import LaunchesPublic, LaunchPublic, PoolPublic, PoolsPublic
from domain.errors import NotFound

router = APIRouter(prefix="/v1/pools", tags=["pools"], responses=problem_responses(401, 403, 503))


@router.get("")
def list_pools(_: Client, ctx: Ctx) -> PoolsPublic:
    configured = ctx.settings.pools
    state = ctx.scaling.pools([p.name for p in configured])
    return PoolsPublic(
        items=[
            PoolPublic(
                name=p.name,
                capabilities=p.capabilities,
                min_bots=p.min_bots,
                max_bots=p.max_bots,
                max_concurrency=p.max_concurrency,
                **state[p.name],
            )
            for p in configured
        ]
    )


@router.get("/{name}/launches", responses=problem_responses(404, 422))
def list_launches(
    name: StorableText,
    _: Client,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> LaunchesPublic:
    """The pool's launches, newest first."""
    if name not in {p.name for p in ctx.settings.pools}:
        raise NotFound(f"no pool {name}")
    return LaunchesPublic(items=[LaunchPublic(**row) for row in ctx.scaling.launches(name, limit)])
