"""Everything a request handler may use, built once per process and handed to ``create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import HTTPConnection

from api.dashboard.stream import ViewBroadcast
from api.ports import (
    BotPresence,
    ClaimBoard,
    DashboardReads,
    FleetReads,
    History,
    KeyReads,
    Liveness,
    MessageClaims,
    MessageReads,
    MessageSender,
    Metrics,
    PositionWaiter,
    ProcessReads,
    ProcessTimingReads,
    ProfileReport,
    Readiness,
    RedriveFinder,
    ScalingReads,
    ScheduleReads,
    StageReads,
    TaskReads,
)
from api.settings import Settings
from api.throttle import Throttle
from domain.hive import Committed, Hive
from projections.incident_reads import IncidentReads
from projections.timings import ProcessTimings
from store.health import DatabaseGate

if TYPE_CHECKING:  # api.auth reads the container from the request: no import cycle
    from api.auth import KeyRing
    from api.dashboard.session_book import SessionBook
    from api.mode_gate import HiveModeNow


@dataclass
class Container:
    settings_now: Callable[[], Settings]  # the environment's, with the config in force
    hive: Hive
    tasks: TaskReads
    fleet: FleetReads
    schedules: ScheduleReads
    positions: PositionWaiter  # the tasks view's
    schedule_positions: PositionWaiter  # the schedules view's
    claims: ClaimBoard
    liveness: Liveness
    presence: BotPresence
    processes: ProcessReads
    readiness: Readiness
    keys: KeyRing
    gate: DatabaseGate
    scaling: ScalingReads
    messages: MessageClaims
    postman: MessageSender
    message_reads: MessageReads
    key_reads: KeyReads
    stages: StageReads
    metrics: Metrics
    redrive: RedriveFinder  # what a bulk re-drive finds (the tasks view)
    process_stats: ProcessTimingReads  # every process's timings over a window
    dashboard: DashboardReads | None = None  # None: the dashboard is not served
    history: History | None = None
    sessions: SessionBook | None = None  # the dashboard's sign-ins
    profile: ProfileReport | None = None  # the bottleneck report (None: not served)
    broadcast: ViewBroadcast = field(default_factory=ViewBroadcast)
    throttle: Throttle = field(default_factory=Throttle)  # rate limits (the config's)
    config_version: Callable[[], int] = lambda: 0  # the config version this process applied
    timings: ProcessTimings = field(default_factory=ProcessTimings)  # this process's own
    modes: HiveModeNow | None = None  # the hive's mode as this process acts on it
    incidents: IncidentReads | None = None  # the incidents view
    incident_positions: PositionWaiter | None = None  # the incidents view's

    @property
    def settings(self) -> Settings:
        return self.settings_now()

    def position_after(self, committed: Committed[Any]) -> int:
        """The log position to wait for to read a command's outcome: its own, or when it
        wrote nothing (a repeat), the log's current end, which is past whatever it repeated."""
        if committed.position is not None:
            return committed.position
        return self.hive.recorder.max_notification_id() or 0


def container_of(conn: HTTPConnection) -> Container:
    """The container ``create_app`` stored on the application."""
    return cast(Container, conn.app.state.container)
