"""The incidents pages: the list (by state, rule, severity; newest first, in keyset pages)
and each incident's page (its evidence, linking to the tasks and bots it cites, and its
timeline); an admin acknowledges or resolves one from there (``api.dashboard.actions``'
rules: an admin's session, the page's origin and CSRF token, a confirmation first)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Query, Request
from fastapi.responses import HTMLResponse
from pydantic import Field

from api.dashboard.csrf import guarded_router
from api.dashboard.routes import Shown, _page
from api.dashboard.session import AdminViewer, Viewer
from api.deps import Ctx, RequestId
from api.routes.incidents import (
    acknowledge_incident,
    get_incident,
    list_incidents,
    resolve_incident,
)
from api.schemas.common import Input, problem_responses
from api.schemas.incidents import (
    AcknowledgeRequest,
    IncidentDetail,
    IncidentListQuery,
    IncidentsPublic,
    ResolveRequest,
    Text,
)

router = guarded_router()
REFUSED = problem_responses(401, 403, 404, 409, 422)


class IncidentsShown(Shown):
    state: str | None = Field(default=None, max_length=200)
    rule: str | None = Field(default=None, max_length=200)
    severity: str | None = Field(default=None, max_length=200)


class Because(Input):
    """What the confirmation sends: its reason (a note, for an acknowledgement)."""

    reason: Text


@router.get("/incidents")
def incidents_page(
    viewer: Viewer, request: Request, _: Annotated[IncidentsShown, Query()]
) -> HTMLResponse:
    return HTMLResponse(_page(request, viewer, "incidents", "Incidents"))


@router.get("/incidents/{incident_id}")
def incident_page(incident_id: UUID, viewer: Viewer, request: Request) -> HTMLResponse:
    return HTMLResponse(_page(request, viewer, "incident", "Incident", subject=str(incident_id)))


@router.get("/data/incidents")
def incidents_data(
    query: Annotated[IncidentListQuery, Query()], viewer: Viewer, ctx: Ctx
) -> IncidentsPublic:
    return list_incidents(query, viewer, ctx)


@router.get("/data/incidents/{incident_id}")
def incident_data(incident_id: UUID, viewer: Viewer, ctx: Ctx) -> IncidentDetail:
    return get_incident(incident_id, viewer, ctx)


@router.post("/actions/incidents/{incident_id}/ack", responses=REFUSED)
def acknowledge(
    incident_id: UUID, body: Because, admin: AdminViewer, rid: RequestId, ctx: Ctx
) -> IncidentDetail:
    return acknowledge_incident(incident_id, AcknowledgeRequest(note=body.reason), admin, rid, ctx)


@router.post("/actions/incidents/{incident_id}/resolve", responses=REFUSED)
def resolve(
    incident_id: UUID, body: Because, admin: AdminViewer, rid: RequestId, ctx: Ctx
) -> IncidentDetail:
    return resolve_incident(incident_id, ResolveRequest(reason=body.reason), admin, rid, ctx)
