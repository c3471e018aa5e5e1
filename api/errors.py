"""Every error the API answers with, as ``application/problem+json`` (RFC 9457), in one place.

Domain refusals (the ``HiveError`` family), request validation, authentication, body limits,
an unreachable database and anything unexpected are mapped to a status and a problem here
and nowhere else. Problems never echo the request body or a token.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
import psycopg
import psycopg_pool
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from domain.errors import (
    BotNotLive,
    ConcurrentUpdate,
    HiveError,
    InvalidInput,
    InvalidTransition,
    NotApplicable,
    NotFound,
    NotYourMessage,
    NotYourTask,
    StaleDelivery,
    StaleFencingToken,
    StaleVersion,
    Undeliverable,
)
from store.health import DatabaseUnavailable

logger = logging.getLogger(__name__)

PROBLEM_TYPE = "https://apiary.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_REPORTED_ERRORS = 100

HIVE_ERRORS: dict[type[HiveError], tuple[int, str]] = {
    InvalidInput: (422, "invalid-input"),
    NotFound: (404, "not-found"),
    InvalidTransition: (409, "invalid-transition"),
    NotYourTask: (409, "not-your-task"),
    StaleFencingToken: (409, "stale-fencing-token"),
    BotNotLive: (409, "bot-not-live"),
    NotYourMessage: (409, "not-your-message"),
    StaleDelivery: (409, "stale-delivery"),
    Undeliverable: (409, "undeliverable"),
    ConcurrentUpdate: (503, "concurrent-update"),
    StaleVersion: (412, "stale-version"),
    NotApplicable: (409, "not-applicable"),
}

HTTP_SLUGS: dict[int, str] = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    428: "precondition-required",
    429: "rate-limited",
}

DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    DatabaseUnavailable,  # the gate: known to be down, refused without trying
    OperationalError,  # eventsourcing's wrappers of the driver's errors
    InterfaceError,
    psycopg.OperationalError,  # raised directly by our own queries
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(
    status: int,
    slug: str,
    detail: str | None = None,
    *,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


class ApiProblem(HTTPException):
    """A refusal decided by the API layer itself (not by the hive)."""

    slug = "bad-request"

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=dict(headers or {}))
        self.extra = extra


class Unauthorized(ApiProblem):
    slug = "unauthorized"

    def __init__(self, detail: str = "a valid API key is required") -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiProblem):
    slug = "forbidden"

    def __init__(self, detail: str) -> None:
        super().__init__(403, detail)


class PayloadTooLarge(ApiProblem):
    """A body, or one item's payload or result, over its limit."""

    slug = "payload-too-large"

    def __init__(self, detail: str, *, items: Sequence[Mapping[str, Any]] = ()) -> None:
        if items:
            super().__init__(413, detail, items=list(items))
        else:
            super().__init__(413, detail)


class RateLimited(ApiProblem):
    """Over a rate limit (a token bucket): when to try again, as ``Retry-After`` and the
    RateLimit header fields (``RateLimit-Limit``: the burst; ``RateLimit-Remaining``: 0;
    ``RateLimit-Reset``: seconds until the bucket is full again), in whole seconds."""

    slug = "rate-limited"

    def __init__(self, detail: str, *, retry_after_s: float, full_after_s: float, limit: int):
        super().__init__(
            429,
            detail,
            headers={
                "Retry-After": str(max(1, math.ceil(retry_after_s))),
                "RateLimit-Limit": str(limit),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(max(1, math.ceil(full_after_s))),
            },
        )


class PreconditionRequired(ApiProblem):
    slug = "precondition-required"

    def __init__(self, detail: str) -> None:
        super().__init__(428, detail)


class PreconditionFailed(ApiProblem):
    slug = "stale-version"

    def __init__(self, detail: str) -> None:
        super().__init__(412, detail)


class NotReady(ApiProblem):
    slug = "not-ready"

    def __init__(self, checks: Mapping[str, str]) -> None:
        super().__init__(503, "not ready to serve", checks=dict(checks))


def request_id_of(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else None


def invalid(loc: tuple[str | int, ...], kind: str, msg: str) -> RequestValidationError:
    """A 422 shaped like pydantic's, for a rule checked after the schema (e.g. from settings)."""
    return RequestValidationError([{"type": kind, "loc": loc, "msg": msg, "input": None}])


def invalid_all(
    problems: Sequence[tuple[tuple[str | int, ...], str, str]],
) -> RequestValidationError:
    """A 422 naming every (loc, kind, message) at once."""
    return RequestValidationError(
        [{"type": kind, "loc": loc, "msg": msg, "input": None} for loc, kind, msg in problems]
    )


def internal_error(request_id: str | None) -> ProblemResponse:
    return problem(
        500,
        "internal-error",
        "an unexpected error; quote the request id when reporting it",
        request_id=request_id,
    )


def install(app: FastAPI, *, retry_after_s: int) -> None:
    """Register the handlers on ``app``; unexpected errors are the middleware's (500)."""
    retry_after = {"Retry-After": str(retry_after_s)}

    async def hive_refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HiveError)
        status, slug = _hive_status(exc)
        extra: dict[str, Any] = {}
        task_id = exc.context.get("task_id")
        if status == 409 and task_id is not None:
            extra["items"] = [{"task_id": str(task_id), "reason": slug}]
        index = exc.context.get("index")
        if isinstance(index, int):
            extra["index"] = index
        headers = None
        if status == 503:
            headers = retry_after
            logger.warning(
                "command kept colliding with concurrent writers",
                extra={"action": "http_concurrent_update", "request_id": request_id_of(request)},
            )
        return problem(
            status,
            slug,
            exc.message,
            request_id=request_id_of(request),
            headers=headers,
            **extra,
        )

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        request.app.state.container.gate.failed()
        # Refused by the gate: the outage was said once (db_down), not once per request.
        logger.log(
            logging.DEBUG if isinstance(exc, DatabaseUnavailable) else logging.WARNING,
            "database unavailable: %s",
            type(exc).__name__,
            extra={"action": "http_database_unavailable", "request_id": request_id_of(request)},
        )
        return problem(
            503,
            "database-unavailable",
            "the database cannot be reached; nothing was persisted, try again",
            request_id=request_id_of(request),
            headers=retry_after,
        )

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        raw = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in raw):
            return problem(
                400,
                "malformed-json",
                "the body is not valid JSON",
                request_id=request_id_of(request),
            )
        # loc, msg and type only: never the offending input (it may be a payload) or ctx.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in raw[:MAX_REPORTED_ERRORS]
        ]
        return problem(
            422,
            "validation-failed",
            f"the request is not valid ({len(raw)} error{'s' if len(raw) != 1 else ''})",
            request_id=request_id_of(request),
            errors=errors,
        )

    async def http_refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if isinstance(exc, ApiProblem):
            slug, extra = exc.slug, exc.extra
        else:
            slug, extra = HTTP_SLUGS.get(exc.status_code, "http-error"), {}
        return problem(
            exc.status_code,
            slug,
            exc.detail,
            request_id=request_id_of(request),
            headers=exc.headers,
            **extra,
        )

    app.add_exception_handler(HiveError, hive_refused)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_refused)
    for kind in DATABASE_UNAVAILABLE:
        app.add_exception_handler(kind, database_unavailable)


def _hive_status(exc: HiveError) -> tuple[int, str]:
    for kind in type(exc).__mro__:
        if kind in HIVE_ERRORS:
            return HIVE_ERRORS[kind]  # type: ignore[index]
    return 409, "refused"
