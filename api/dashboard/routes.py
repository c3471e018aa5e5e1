"""The dashboard's pages, the data they render, and their live stream.

Pages are one HTML shell each; ``static/dashboard.js`` fetches the page's data as JSON
and renders it, and re-fetches whenever the ``/dashboard/stream`` event source says the
views moved. Every route needs a signed-in viewer (a session opened with a client or
an admin key, ``api.dashboard.session``); pages redirect to the sign-in form without one,
data and the stream answer 401. The config, admin-only in the API, is for admin keys here
too: its page tells any other viewer so (403), its data answers 403; so are the operators'
actions (``api.dashboard.actions``), whose buttons only an admin's pages show. Every
state-changing request must come from the dashboard's own pages (``api.dashboard.csrf``:
403 otherwise).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import Field

from api.auth import Principal, principal_for
from api.container import Container, container_of
from api.dashboard import actions, dead_letters, profile
from api.dashboard.csrf import guarded_router, token_for
from api.dashboard.pages import page, sign_in_page
from api.dashboard.readiness import badge_of, checks_of, readiness_of
from api.dashboard.session import (
    COOKIE,
    PATH,
    AdminViewer,
    SignInNeeded,
    Viewer,
    admin_only,
    drop_session,
    is_admin,
    keep_session,
    may_view,
    sessions_of,
)
from api.dashboard.timeline import task_timeline
from api.dashboard.wiring import dashboard_reads, history
from api.deps import Ctx, RequestId
from api.errors import Forbidden, invalid, problem, request_id_of
from api.schemas.common import Input, Model, StorableText, problem_responses
from api.schemas.config import ConfigPublic, history_of
from api.schemas.messages import MessagePublic
from api.schemas.metrics import StagesPublic
from api.schemas.modes import ModePublic
from api.schemas.processes import ProcessPublic
from api.schemas.schedules import SchedulePublic
from api.throttle import limit_sign_in
from domain.attempts import Attempt, AttemptOutcome, attempts
from domain.errors import NotFound
from domain.tasks import TaskState
from projections.dashboard_reads import ListedTasks
from store.processes import health_of

STATIC = Path(__file__).parent / "static"
SCHEDULES_SHOWN = 200
BOTS_SHOWN = 500
DEAD_LETTERS_SHOWN = 20
RUNS_COUNTED = 100  # a schedule's latest runs, counted by state
RUNS_SHOWN = 5  # a schedule's latest runs, each with its attempt
CONFIG_VERSIONS_SHOWN = 50

# Every request: a state-changing one must come from this server's own pages (403).
router = guarded_router()


class SignIn(Input):
    key: str = Field(min_length=1, max_length=200)


class SignedIn(Model):
    signed_in_as: str


class SignedOut(Model):
    signed_out: str


@router.get("/login")
def sign_in_form() -> HTMLResponse:
    return HTMLResponse(sign_in_page())


@router.post("/session", responses=problem_responses(401, 403, 422, 503))
def sign_in(body: SignIn, request: Request, response: Response, rid: RequestId) -> SignedIn:
    """Open a session with a client or admin key; the cookie holds the session's token.
    A session the browser held until now is closed: its cookie is about to be replaced."""
    limit_sign_in(request)  # 429 when this address signs in too often (api.throttle)
    principal = principal_for(request, body.key)
    if principal is None:
        raise SignInNeeded()
    if not may_view(principal):
        raise Forbidden("the dashboard takes a client or an admin key, as the API's reads do")
    book = sessions_of(request)
    previous = book.session(request.cookies.get(COOKIE, ""))
    if previous is not None:
        book.close(previous, "signed in again", principal.cause(rid))
    token = book.open(principal.key_id, principal.cause(rid))
    keep_session(response, request, token)
    return SignedIn(signed_in_as=principal.actor)


@router.post("/logout", responses=problem_responses(401, 403, 503))
def sign_out(viewer: Viewer, request: Request, response: Response, rid: RequestId) -> SignedOut:
    """Close the session in the log: its cookie is worth nothing from now on."""
    book = sessions_of(request)
    session = book.session(request.cookies[COOKIE])  # the viewer's: checked just now
    if session is not None:
        book.close(session, "signed out", viewer.cause(rid))
    drop_session(response, request)
    return SignedOut(signed_out="yes")


def _page(request: Request, viewer: Principal, name: str, title: str, **shown: str) -> str:
    """A page's shell, with the session's CSRF token for the page's script to send, and
    whether it shows an admin's actions."""
    csrf = token_for(request.cookies[COOKIE])
    return page(name, title, csrf=csrf, admin=is_admin(viewer), **shown)


@router.get("")
def overview_page(viewer: Viewer, request: Request) -> HTMLResponse:
    return HTMLResponse(_page(request, viewer, "overview", "Overview"))


class Shown(Input):
    """What a page's address may carry for its script: its filter and cursor, passed on as
    they are (the page's data route checks them)."""

    cursor: str | None = Field(default=None, max_length=200)


class TasksShown(Shown):
    state: str | None = Field(default=None, max_length=200)
    type: str | None = Field(default=None, max_length=200)


class DeadLettersShown(Shown):
    type: str | None = Field(default=None, max_length=200)
    error_kind: str | None = Field(default=None, max_length=200)
    since: str | None = Field(default=None, max_length=200)
    until: str | None = Field(default=None, max_length=200)


@router.get("/tasks")
def tasks_page(viewer: Viewer, request: Request, _: Annotated[TasksShown, Query()]) -> HTMLResponse:
    return HTMLResponse(_page(request, viewer, "tasks", "Tasks"))


@router.get("/tasks/{task_id}")
def task_page(task_id: UUID, viewer: Viewer, request: Request) -> HTMLResponse:
    return HTMLResponse(_page(request, viewer, "task", "Task", subject=str(task_id)))


@router.get("/dead-letters")
def dead_letters_page(
    viewer: Viewer, request: Request, _: Annotated[DeadLettersShown, Query()]
) -> HTMLResponse:
    return HTMLResponse(_page(request, viewer, "dead-letters", "Dead letters"))


class ProfileShown(Shown):
    window: str | None = Field(default=None, max_length=200)


@router.get("/profile")
def profile_page(
    viewer: Viewer, request: Request, _: Annotated[ProfileShown, Query()]
) -> HTMLResponse:
    return HTMLResponse(_page(request, viewer, "profile", "Profile"))


@router.get("/bots")
def bots_page(viewer: Viewer, request: Request) -> HTMLResponse:
    return HTMLResponse(_page(request, viewer, "bots", "Bots"))


@router.get("/schedules")
def schedules_page(viewer: Viewer, request: Request) -> HTMLResponse:
    return HTMLResponse(_page(request, viewer, "schedules", "Schedules"))


@router.get("/messages")
def messages_page(viewer: Viewer, request: Request) -> HTMLResponse:
    return HTMLResponse(_page(request, viewer, "messages", "Messages"))


@router.get("/config")
def config_page(viewer: Viewer, request: Request) -> HTMLResponse:
    if not is_admin(viewer):
        refused = _page(request, viewer, "config", "Config", refused=admin_only(viewer))
        return HTMLResponse(refused, status_code=403)
    return HTMLResponse(_page(request, viewer, "config", "Config"))


# -- data -----------------------------------------------------------------------------


@router.get("/data/overview")
def overview_data(_: Viewer, ctx: Ctx) -> dict[str, Any]:
    data = dashboard_reads(ctx).overview()
    data["checks"] = checks_of(ctx.readiness, ctx.gate)
    mode = {} if ctx.modes is None else ModePublic.of(ctx.modes).model_dump(mode="json")
    data["mode"] = badge_of(mode, readiness_of(data["checks"]))  # pushed too, as it changes
    stages = StagesPublic.build(ctx.stages.histograms(), ctx.stages.minutes(15, ctx.hive.clock()))
    data["stages"] = stages.model_dump(mode="json")  # the same numbers as /v1/metrics/stages
    data["processes"] = _processes(ctx)
    return data


@router.get("/data/tasks")
def tasks_data(
    _: Viewer,
    ctx: Ctx,
    state: TaskState | None = None,
    type: Annotated[
        StorableText | None, Query(max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    ] = None,
    cursor: Annotated[StorableText | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The tasks, newest first, each with its state, attempt and latest error."""
    flt = ListedTasks(state=None if state is None else str(state), type=type)
    try:
        rows, next_cursor = dashboard_reads(ctx).tasks(flt, limit=limit, cursor=cursor)
    except ValueError as e:
        raise invalid(("query", "cursor"), "value_error", str(e)) from None
    return {"items": [_listed(r) for r in rows], "next_cursor": next_cursor}


@router.get("/data/tasks/{task_id}")
def task_data(task_id: UUID, _: Viewer, ctx: Ctx) -> dict[str, Any]:
    """The task as the view has it (with its payload and result), its attempts and its
    timeline, both from the log."""
    row = ctx.tasks.get(task_id)
    timeline = task_timeline(history(ctx), task_id, None if row is None else row.flagged_at)
    if row is None and not timeline:
        raise NotFound(f"no task {task_id}", id=task_id)
    shown = None if row is None else _task(row) | {"payload": row.payload, "result": row.result}
    upto = row.version if row is not None else max((e.version for e in timeline), default=0)
    return {
        "task": shown,
        "attempts": [_attempt(a) for a in attempts(history(ctx).events(task_id, upto))],
        "timeline": [
            {
                "position": e.position,
                "version": e.version,
                "kind": e.kind,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "request_id": e.request_id,
                "chain_hash": e.chain_hash,
                "fields": e.fields,
            }
            for e in timeline
        ],
    }


@router.get("/data/bots")
def bots_data(_: Viewer, ctx: Ctx) -> dict[str, Any]:
    """The live bots (the first ``BOTS_SHOWN``), as ``GET /v1/bots`` lists them."""
    from projections.rows import BotFilter

    details = dashboard_reads(ctx).bot_details()
    bots, more = ctx.fleet.list(BotFilter(), limit=BOTS_SHOWN, cursor=None)
    return {
        "items": [
            {
                **_bot_details(details.get(b.bot_id)),
                "id": str(b.bot_id),
                "name": b.name,
                "state": b.state,
                "state_reason": b.state_reason,
                "pool": b.pool,
                "capabilities": b.capabilities,
                "held": b.held,
                "capacity": b.max_concurrency,
                "version": b.version_label,
                "config_version": b.config_version,
                "registered_at": b.registered_at.isoformat(),
            }
            for b in bots
        ],
        "more": more is not None,
        "config_version": ctx.config_version(),  # the version in force, as this process has it
    }


@router.get("/data/schedules")
def schedules_data(_: Viewer, ctx: Ctx) -> dict[str, Any]:
    """The schedules (the first ``SCHEDULES_SHOWN``), each with its latest runs by state
    and its very latest runs with their attempts."""
    rows, more = ctx.schedules.list(None, limit=SCHEDULES_SHOWN, cursor=None)
    ids = [r.schedule_id for r in rows]
    runs = ctx.schedules.runs_by_state(ids, RUNS_COUNTED)
    latest = dashboard_reads(ctx).latest_runs(ids, RUNS_SHOWN)
    return {
        "items": [
            SchedulePublic.from_row(r).model_dump(mode="json")
            | {
                "runs": runs.get(r.schedule_id, {}),
                "latest_runs": [_run(run) for run in latest.get(r.schedule_id, [])],
            }
            for r in rows
            if r.state != "deleted"
        ],
        "more": more is not None,
        "runs_counted": RUNS_COUNTED,
    }


@router.get("/data/messages")
def messages_data(_: Viewer, ctx: Ctx) -> dict[str, Any]:
    """Messages by state and the newest dead letters (never a message's body)."""
    dead = ctx.message_reads.dead_letters(DEAD_LETTERS_SHOWN)
    return {
        "by_state": ctx.message_reads.by_state(),
        "dead_letters": [
            MessagePublic.from_row(m).model_dump(mode="json", exclude={"body"}) for m in dead
        ],
    }


@router.get("/data/config")
def config_data(_: AdminViewer, ctx: Ctx) -> dict[str, Any]:
    """The version in force and its document, and the latest versions, newest first (as
    ``GET /v1/config`` and ``GET /v1/config/history`` give them). One read of the log: the
    newest version is the one in force, so the two never disagree."""
    versions = ctx.hive.config.versions(latest=CONFIG_VERSIONS_SHOWN + 1)  # +1: to compare
    if not versions:
        raise NotFound("the config has no version yet")
    return {
        "current": ConfigPublic.of_version(versions[-1]).model_dump(mode="json"),
        "history": [v.model_dump(mode="json") for v in history_of(versions, CONFIG_VERSIONS_SHOWN)],
        "more": len(versions) > CONFIG_VERSIONS_SHOWN,
    }


@router.get("/stream")
async def stream(_: Viewer, request: Request) -> StreamingResponse:
    container = container_of(request)
    closing = asyncio.Event()

    async def events() -> Any:
        async for chunk in container.broadcast.events(closing):
            if await request.is_disconnected():
                closing.set()
            yield chunk

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _processes(ctx: Container) -> dict[str, Any]:
    """The hive's processes (as ``GET /v1/processes``) and the checks drawn from them."""
    rows = ctx.processes.live()
    return {
        "items": [ProcessPublic.from_row(r).model_dump(mode="json") for r in rows],
        "checks": health_of(rows),
        "config_version": ctx.config_version(),
    }


def _bot_details(found: dict[str, Any] | None) -> dict[str, Any]:
    found = found or {}
    rate = found.get("success_rate")
    return {
        "success_rate": None if rate is None else round(float(rate), 3),
        "current_tasks": [str(t) for t in found.get("current_tasks") or []],
    }


def _task(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.task_id),
        "type": row.type,
        "priority": row.priority,
        "state": row.state,
        "bot_id": None if row.bot_id is None else str(row.bot_id),
        "fencing_token": row.fencing_token,
        "submitted_at": row.submitted_at.isoformat(),
        "finished_at": None if row.finished_at is None else row.finished_at.isoformat(),
        "error": row.error,
        "error_kind": row.error_kind,
        "dead_reason": row.dead_reason,
        "attempt": row.attempt,
        "series": row.series,
        "assignment": row.assignment,
        "unroutable": row.unroutable,
    }


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    """A task in the list: what it is, where it stands, its latest error."""
    return {
        "id": str(row["task_id"]),
        "type": row["type"],
        "priority": row["priority"],
        "state": row["state"],
        "bot_id": None if row["bot_id"] is None else str(row["bot_id"]),
        "attempt": row["attempt"],
        "series": row["series"],
        "error": row["error"],
        "error_kind": row["error_kind"],
        "submitted_at": _at(row["submitted_at"]),
        "finished_at": _at(row["finished_at"]),
    }


def _attempt(found: Attempt) -> dict[str, Any]:
    return {
        "series": found.series,
        "attempt": found.attempt,
        "bot_id": str(found.bot_id),
        "started_at": _at(found.started_at),
        "ended_at": _at(found.ended_at),
        "outcome": None if found.outcome is AttemptOutcome.RUNNING else str(found.outcome),
        "error_kind": found.error_kind,
        "error": found.error,
    }


def _run(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["task_id"]),
        "state": row["state"],
        "attempt": row["attempt"],
        "series": row["series"],
        "submitted_at": _at(row["submitted_at"]),
    }


def _at(t: Any) -> str | None:
    return None if t is None else t.isoformat()


def install(app: FastAPI) -> None:
    """The dashboard's routes, its static files, and sign-in handling."""
    app.include_router(router)
    app.include_router(dead_letters.router)
    app.include_router(profile.router)
    app.include_router(actions.router)
    from api.dashboard import incidents  # (it builds its pages with this module's shell)

    app.include_router(incidents.router)
    app.mount(f"{PATH}/static", StaticFiles(directory=STATIC), name="dashboard-static")

    async def signed_out(request: Request, exc: Exception) -> Response:
        """No valid session: sign in (and the browser forgets a cookie worth nothing)."""
        path = request.url.path
        response: Response
        if request.method not in ("GET", "HEAD") or path.startswith(
            (f"{PATH}/data", f"{PATH}/stream")
        ):
            response = problem(
                401, "unauthorized", "sign in with an API key", request_id=request_id_of(request)
            )
        else:
            response = RedirectResponse(f"{PATH}/login", status_code=303)
        drop_session(response, request)
        return response

    app.add_exception_handler(SignInNeeded, signed_out)
