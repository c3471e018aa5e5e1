"""Incidents: list them, read one (its evidence and timeline), acknowledge or resolve one
(admin). A change answers with what the incidents view shows once it has applied it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from api.container import Container
from api.deps import Admin, Client, Ctx, RequestId
from api.errors import invalid
from api.schemas.common import problem_responses
from api.schemas.incidents import (
    AcknowledgeRequest,
    IncidentDetail,
    IncidentListQuery,
    IncidentPublic,
    IncidentsPublic,
    ResolveRequest,
)
from domain.errors import NotFound
from domain.hive import Committed
from domain.incidents import Incident
from projections.incident_reads import IncidentReads

READ_YOUR_WRITES_S = 5.0

router = APIRouter(
    prefix="/v1/incidents", tags=["incidents"], responses=problem_responses(401, 403, 422, 503)
)


def _reads(ctx: Container) -> IncidentReads:
    if ctx.incidents is None:  # a composition mistake, not a request's fault
        raise RuntimeError("the incidents view's reads are not wired into this container")
    return ctx.incidents


@router.get("")
def list_incidents(
    query: Annotated[IncidentListQuery, Query()], _: Client, ctx: Ctx
) -> IncidentsPublic:
    """Newest first, a keyset page at a time."""
    try:
        rows, next_cursor = _reads(ctx).page(query.filter(), limit=query.limit, cursor=query.cursor)
    except ValueError as e:
        raise invalid(("query", "cursor"), "value_error", str(e)) from None
    return IncidentsPublic(items=[IncidentPublic.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/{incident_id}", responses=problem_responses(404))
def get_incident(incident_id: UUID, _: Client, ctx: Ctx) -> IncidentDetail:
    return _detail(ctx, incident_id)


@router.post("/{incident_id}/ack", responses=problem_responses(404, 409))
def acknowledge_incident(
    incident_id: UUID,
    body: AcknowledgeRequest,
    principal: Admin,
    request_id: RequestId,
    ctx: Ctx,
) -> IncidentDetail:
    """An operator has seen it (409 once acknowledged or resolved)."""
    committed = ctx.hive.incidents.acknowledge(incident_id, body.note, principal.cause(request_id))
    return _detail(ctx, incident_id, committed)


@router.post("/{incident_id}/resolve", responses=problem_responses(404, 409))
def resolve_incident(
    incident_id: UUID,
    body: ResolveRequest,
    principal: Admin,
    request_id: RequestId,
    ctx: Ctx,
) -> IncidentDetail:
    """Resolved by hand, with a reason (409 once resolved). If its rule fires again, the
    detector opens the next incident of it."""
    committed = ctx.hive.incidents.resolve(incident_id, body.reason, principal.cause(request_id))
    return _detail(ctx, incident_id, committed)


def _detail(
    ctx: Container, incident_id: UUID, committed: Committed[Incident] | None = None
) -> IncidentDetail:
    if committed is not None and ctx.incident_positions is not None:
        ctx.incident_positions.wait(ctx.position_after(committed), READ_YOUR_WRITES_S)
    reads = _reads(ctx)
    row = reads.get(incident_id)
    if row is None:
        raise NotFound(f"no incident {incident_id}", id=incident_id)
    return IncidentDetail.with_timeline(row, reads.timeline(incident_id))
