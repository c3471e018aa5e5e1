"""API keys (admin only): list, show, issue, revoke, rotate. A key's secret is in the
answer that issues it and nowhere else; neither it nor its hash is ever shown again."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from api.container import Container
from api.deps import Admin, Ctx, RequestId
from api.errors import invalid
from api.schemas.common import problem_responses
from api.schemas.keys import KeyCreate, KeyIssued, KeyListQuery, KeyPublic, KeysPublic
from domain.keys import ApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=problem_responses(401, 403, 503))


@router.get("", responses=problem_responses(422))
def list_keys(query: Annotated[KeyListQuery, Query()], _: Admin, ctx: Ctx) -> KeysPublic:
    """Keys in the order they were issued, bots' own keys included; by default only those
    that still work (``include_revoked``, ``include_expired`` for the others)."""
    now = ctx.hive.clock()
    try:
        rows, next_cursor = ctx.key_reads.list(
            query.filter(), now=now, limit=query.limit, cursor=query.cursor
        )
    except ValueError as e:
        raise invalid(("query", "cursor"), "value_error", str(e)) from None
    return KeysPublic(items=[KeyPublic.from_row(r, now) for r in rows], next_cursor=next_cursor)


@router.get("/{key_id}", responses=problem_responses(404, 422))
def get_key(key_id: UUID, _: Admin, ctx: Ctx) -> KeyPublic:
    """One key, as the log has it now."""
    return _public(ctx, ctx.hive.get(ApiKey, key_id))


@router.post("", status_code=201, responses=problem_responses(400, 413, 422))
def create_key(
    body: KeyCreate, principal: Admin, request_id: RequestId, ctx: Ctx, response: Response
) -> KeyIssued:
    """A new key; its token is in this answer only."""
    issued = ctx.hive.keys.issue(
        body.name,
        body.role,
        principal.cause(request_id),
        expires_at=body.expiry(ctx.hive.clock()),
        principal=body.principal,
    )
    response.headers["Location"] = f"{router.prefix}/{issued.key.id}"
    return KeyIssued.of_issued(issued, ctx.hive.clock())


@router.post("/{key_id}/revoke", responses=problem_responses(404, 409, 422))
def revoke_key(key_id: UUID, principal: Admin, request_id: RequestId, ctx: Ctx) -> KeyPublic:
    """Refused from now on, on every API process within a second (409 if revoked already)."""
    committed = ctx.hive.keys.revoke(key_id, principal.cause(request_id))
    return _public(ctx, committed.items[0])


@router.post("/{key_id}/rotate", status_code=201, responses=problem_responses(404, 409, 422))
def rotate_key(
    key_id: UUID, principal: Admin, request_id: RequestId, ctx: Ctx, response: Response
) -> KeyIssued:
    """A new key with the same name, principal, role and expiry, its token in this answer
    only; the old key is revoked in the same save, with no grace period (409 for a key
    revoked or expired, or a bot's own key)."""
    issued, _ = ctx.hive.keys.rotate(key_id, principal.cause(request_id))
    response.headers["Location"] = f"{router.prefix}/{issued.key.id}"
    return KeyIssued.of_issued(issued, ctx.hive.clock())


def _public(ctx: Container, key: ApiKey) -> KeyPublic:
    return KeyPublic.of(key, ctx.hive.clock(), ctx.key_reads.last_used(key.id))
