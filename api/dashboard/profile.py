"""The Profile page's data: the bottleneck report (``GET /v1/profile``'s body) for the
window the page's address asks for (5 minutes unless it says)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from api.dashboard.csrf import guarded_router
from api.dashboard.session import Viewer
from api.deps import Ctx
from api.errors import NotReady
from api.schemas.profile import ProfilePublic, ProfileQuery

router = guarded_router()


@router.get("/data/profile")
def profile_data(query: Annotated[ProfileQuery, Query()], _: Viewer, ctx: Ctx) -> dict[str, Any]:
    if ctx.profile is None:
        raise NotReady({"profile": "this process keeps no profiler"})
    return ProfilePublic.of(ctx.profile.report(query.window)).model_dump(mode="json")
