"""The runtime configuration (admin only): read it, change it against its version, roll it
back, list its history. Every process applies a new version within a second."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from api.container import Container
from api.deps import Admin, Ctx, RequestId
from api.errors import PreconditionFailed, PreconditionRequired
from api.schemas.common import StorableText, problem_responses
from api.schemas.config import (
    ConfigHistory,
    ConfigPatch,
    ConfigPublic,
    ConfigReplace,
    ConfigRollback,
    history_of,
    valid_document,
)
from domain.config import HiveConfig
from domain.errors import NotApplicable
from runtime.config import Knobs

router = APIRouter(prefix="/v1/config", tags=["config"], responses=problem_responses(401, 403, 503))
CHANGE_PROBLEMS = problem_responses(404, 409, 412, 422, 428)
IfMatch = Annotated[
    StorableText | None,
    Header(description="the version the change was made against, as GET returned it (ETag)"),
]


@router.get("", responses=problem_responses(404))
def get_config(_: Admin, ctx: Ctx, response: Response) -> ConfigPublic:
    """The version in force and its document (its ETag is the version)."""
    return _public(ctx.hive.config.current(), response)


@router.put("", responses=CHANGE_PROBLEMS)
def replace_config(
    body: ConfigReplace,
    principal: Admin,
    request_id: RequestId,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> ConfigPublic:
    """A whole new document, as a new version."""
    expected = _version_of(if_match)
    knobs = valid_document(body.document, ("body", "document"))
    return _change(ctx, knobs, expected, body.reason, principal.cause(request_id), response)


@router.patch("", responses=CHANGE_PROBLEMS)
def patch_config(
    body: ConfigPatch,
    principal: Admin,
    request_id: RequestId,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> ConfigPublic:
    """Some knobs set anew; the others as they are in the version named by If-Match."""
    expected = _version_of(if_match)
    current = ctx.hive.config.current()
    document = {**json.loads(current.document), **body.changes}
    knobs = valid_document(document, ("body", "changes"))
    return _change(ctx, knobs, expected, body.reason, principal.cause(request_id), response)


@router.post("/rollback", responses=CHANGE_PROBLEMS)
def rollback_config(
    body: ConfigRollback,
    principal: Admin,
    request_id: RequestId,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> ConfigPublic:
    """An earlier version's document, in force again as a new version."""
    expected = _version_of(if_match)
    old = ctx.hive.config.version(body.version)
    knobs = valid_document(json.loads(old.document), ("body", "version"))
    _check_applicable(ctx, knobs)
    ctx.hive.config.rollback(body.version, expected, body.reason, principal.cause(request_id))
    return _public(ctx.hive.config.current(), response)


@router.get("/versions/{version}", responses=problem_responses(404, 422))
def config_version(version: int, _: Admin, ctx: Ctx) -> ConfigPublic:
    """One version's document, as it was written."""
    return ConfigPublic.of_version(ctx.hive.config.version(version))


@router.get("/history")
def config_history(
    _: Admin, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> ConfigHistory:
    """The versions, newest first: who, when, why, and what changed from what to what."""
    versions = ctx.hive.config.versions(latest=limit + 1)  # the one before: to compare
    return ConfigHistory(items=history_of(versions, limit))


def _change(
    ctx: Container, knobs: Knobs, expected: int, reason: str, cause: Any, response: Response
) -> ConfigPublic:
    _check_applicable(ctx, knobs)
    ctx.hive.config.change(knobs.document(), expected, reason, cause)
    return _public(ctx.hive.config.current(), response)


def _check_applicable(ctx: Container, knobs: Knobs) -> None:
    """A pool whose bots are running keeps what they were started with: it cannot be
    removed, nor its bots' capabilities, slots or command changed, until they are gone."""
    current = Knobs.parse(ctx.hive.config.current().document)
    new = {p.name: p for p in knobs.pools}
    for pool in current.pools:
        live = ctx.presence.bots_in_pool(pool.name)
        if not live:
            continue
        after = new.get(pool.name)
        if after is None:
            raise NotApplicable(
                f"pool {pool.name} has {live} live bot(s): set its min_bots and max_bots "
                "to 0 first, then remove it once they are gone",
                pool=pool.name,
            )
        if after.template() != pool.template():
            raise NotApplicable(
                f"pool {pool.name} has {live} live bot(s) started with its capabilities, "
                "slots and command: scale it to 0 before changing them",
                pool=pool.name,
            )


def _version_of(if_match: str | None) -> int:
    if if_match is None:
        raise PreconditionRequired("If-Match is required: the version the change was made against")
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 9:
        raise PreconditionFailed("If-Match must be a config version, as GET returned it (ETag)")
    return int(text)


def _public(config: HiveConfig, response: Response) -> ConfigPublic:
    response.headers["ETag"] = f'"{config.version}"'
    return ConfigPublic.of(config)
