"""Plain ASGI middleware: request ids, the access log, the last-resort 500, the body limit.

``RequestContext`` (outermost) gives every request an id (the client's ``X-Request-ID``
when it is well formed, else a fresh one), echoes it on the response, writes one access-log
line per request (method, route template, status, duration, request id, principal: never a
body, a query string or a header), counts its duration in the process's timings by (method,
route template, status class) when it is given them (``projections/timings.py``: about a
microsecond), and turns anything unexpected into a 500 problem that names the request id.
``BodyLimit`` refuses a body over its limit with 413, up front by ``Content-Length`` and
while reading when the body is streamed.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PayloadTooLarge, internal_error, problem
from projections.timings import ProcessTimings

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_from(headers: Headers) -> str:
    given = headers.get(REQUEST_ID_HEADER)
    if given is not None and REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestContext:
    def __init__(self, app: ASGIApp, timings: ProcessTimings | None = None) -> None:
        self.app = app
        self.timings = timings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        began = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception(
                "unhandled error in %s %s",
                scope["method"],
                _route(scope),
                extra={"action": "http_unhandled", "request_id": request_id},
            )
            if started:
                raise
            await internal_error(request_id)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - began
            route = _route(scope)
            if self.timings is not None:
                self.timings.request(scope["method"], route, status, elapsed)
            level = logging.DEBUG if route in BOT_ROUTINE and status < 400 else logging.INFO
            if logger.isEnabledFor(level):
                self._log(level, scope, route, status, elapsed, request_id, state)

    @staticmethod
    def _log(
        level: int,
        scope: Scope,
        route: str,
        status: int,
        elapsed: float,
        request_id: str,
        state: dict[str, object],
    ) -> None:
        elapsed_ms = round(elapsed * 1000, 1)
        principal = state.get("principal", "-")
        logger.log(
            level,
            "%s %s %s %.1fms",
            scope["method"],
            route,
            status,
            elapsed_ms,
            extra={
                "action": "http_request",
                "method": scope["method"],
                "route": route,
                "status": status,
                "duration_ms": elapsed_ms,
                "request_id": request_id,
                "principal": principal,
            },
        )


class BodyLimit:
    """Refuses a body over ``max_body_bytes()`` (read per request: the limit is live)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: Callable[[], int]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes()
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # An HTTPException: FastAPI's body reading re-raises it to our handler.
                    raise self._too_large()
            return message

        async def noting_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, noting_start)
        except PayloadTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body is over {self.max_body_bytes} bytes")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        too_large = self._too_large()
        response = problem(
            413,
            too_large.slug,
            too_large.detail,
            request_id=scope.get("state", {}).get("request_id"),
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


# What a bot does all day (many times a second in a drain): logged at DEBUG while it goes
# well, so that the log at INFO says what matters; any answer of 400 or more is INFO.
BOT_ROUTINE = frozenset(
    "/v1/bots/{bot_id}/" + action
    for action in (
        "heartbeat",
        "claim",
        "start",
        "complete",
        "fail",
        "messages/claim",
        "messages/ack",
    )
)


def _route(scope: Scope) -> str:
    """The matched route's template (never the raw path: ids and junk stay out of logs)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "<unmatched>"
