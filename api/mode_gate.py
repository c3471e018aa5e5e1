"""The hive's mode at this process's door: the ``X-Apiary-Mode`` header on every answer,
and what a mode refuses before a route runs.

The mode a process acts on is the one recorded in the log (``runtime/live_mode.py``),
unless the process can tell it cannot be right: while it cannot reach the database (the
gate is down) or no engine process is alive, it is ``critical``. That is not an event:
nobody could write one, and nobody would assign the work anyway. Every answer says the
mode acted on; ``/healthz`` answers in every mode.

A request is judged and labelled by one reading of the mode: the door (``ModeHeader``)
reads it as the request arrives and keeps it in the request's state (``MODE_STATE``); a
refusal or an admission reads that same value, and the answer's header says it. So an
answer accepted in ``normal`` never says ``degraded`` because the mode moved while the
route ran (a submission is judged by the mode it arrived in).

Per request the header costs the mode (two attribute reads and a call, 0.2 us measured)
and a dict lookup (the header's bytes are built once per mode), in a plain ASGI
middleware: about what ``SecurityHeaders`` costs (1.5-3 us an answer, measured on a busy
machine with a throwaway timeit).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiProblem
from domain.hive import TaskSpec
from domain.keys import Role
from domain.modes import CRITICAL, DEGRADED, MODES
from domain.policies.degradation import admit
from runtime.degradation_config import DegradationConfig
from runtime.live_mode import LiveMode
from store.health import DatabaseGate

HEADER = "X-Apiary-Mode"
MODE_STATE = "mode"  # the request state's key: the mode read at the door
_HEADERS = {mode: (HEADER.lower().encode(), mode.encode()) for mode in MODES}


class HiveModeNow:
    """The mode this process acts on: the recorded one, or ``critical`` as far as it can
    tell (the database away, no engine alive). O(1): no I/O."""

    def __init__(
        self, recorded: LiveMode, gate: DatabaseGate, engine_alive: Callable[[], bool]
    ) -> None:
        self.recorded = recorded
        self.gate = gate
        self.engine_alive = engine_alive
        self.config = DegradationConfig()  # what the modes cost: the config in force's

    def configure(self, config: DegradationConfig) -> None:
        self.config = config

    def effective(self) -> str:
        if self.gate.down or not self.engine_alive():
            return CRITICAL
        return self.recorded.row.mode

    def stream_hold_s(self) -> float:
        """How long the dashboard's push holds after each views event (0: not at all)."""
        return self.config.stream_coalesce_s if self.effective() == DEGRADED else 0.0

    def why_critical(self) -> str | None:
        """What this process can tell on its own (None: it acts on the recorded mode)."""
        if self.gate.down:
            return "this process cannot reach the database"
        if not self.engine_alive():
            return "no engine process is alive"
        return None


class ModeRefused(ApiProblem):
    """A mode that does not serve this request now: try again later."""

    slug = "mode-refused"

    def __init__(self, mode: str, detail: str, retry_after_s: float) -> None:
        super().__init__(
            503,
            detail,
            headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
            mode=mode,
        )


def mode_of(now: HiveModeNow, state: Mapping[str, object] | None) -> str:
    """The mode a request is judged by: the one read at the door, else now's."""
    mode = state.get(MODE_STATE) if state is not None else None
    return mode if isinstance(mode, str) else now.effective()


def serve_principal(
    now: HiveModeNow | None, role: Role, state: Mapping[str, object] | None = None
) -> None:
    """``critical`` serves only admin and bot traffic: a client's request is refused (503
    with ``Retry-After``) before its route runs."""
    if now is None or role is not Role.CLIENT:
        return
    mode = mode_of(now, state)
    if mode == CRITICAL:
        raise ModeRefused(
            mode,
            "the hive is critical: only admin and bot traffic is served; try again later",
            now.config.retry_after_s,
        )


def admit_submission(
    now: HiveModeNow | None,
    specs: Sequence[TaskSpec],
    at: datetime,
    state: Mapping[str, object] | None = None,
) -> list[TaskSpec]:
    """A submission as the mode admits it: in ``degraded``, one with a task below the
    priority threshold is shed whole (503 with ``Retry-After``), or its tasks below it are
    deferred ``defer_s`` (a ``not_before`` then, unless theirs is later), as configured."""
    if now is None:
        return list(specs)
    config, mode = now.config, mode_of(now, state)
    below = config.shed_below_priority
    said = admit(mode, [s.priority for s in specs], below, config.degraded_submissions)
    if said == "accept":
        return list(specs)
    if said == "shed":
        raise ModeRefused(
            mode,
            f"the hive is {mode}: tasks below priority {below} are shed; try again later",
            config.retry_after_s,
        )
    until = at + timedelta(seconds=config.defer_s)
    return [
        s
        if s.priority >= below or (s.not_before is not None and s.not_before >= until)
        else replace(s, not_before=until)
        for s in specs
    ]


class ModeHeader:
    """Every HTTP answer carries ``X-Apiary-Mode``: the mode this process acts on."""

    def __init__(self, app: ASGIApp, *, mode: Callable[[], HiveModeNow | None]) -> None:
        self.app = app
        self.mode = mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        now = self.mode()
        if now is None:
            await self.app(scope, receive, send)
            return
        mode = now.effective()
        scope.setdefault("state", {})[MODE_STATE] = mode
        header = _HEADERS[mode]

        async def send_with_mode(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_mode)
