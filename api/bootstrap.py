"""The composition root: builds one process's share of the hive from Settings and a URL.

Nothing else in the code base constructs infrastructure. A ``Node`` plays one or both roles:
``api`` (HTTP: commands, reads, the claim long-poll) and ``engine`` (view runners, the
dispatcher, the lease reaper). ``all`` is one process for one machine and shares one live
index between the dispatcher and the claim long-poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import psycopg
from psycopg_pool import ConnectionPool

from api.dashboard.mode import ModeWatch, checks_of
from api.dashboard.stream import ViewBroadcast
from api.settings import Settings
from domain.hive import Hive, utc_now
from domain.policies.aging import Aging
from domain.policies.routing import RoutingConfig
from domain.policies.runs import TOPICS as RUN_TOPICS
from projections.counts import COUNT_MIGRATIONS
from projections.dashboard_reads import DashboardReads
from projections.fleet_view import FleetView
from projections.message_reads import MessageReads
from projections.messages_view import MESSAGE_MIGRATIONS, MessagesView
from projections.metric_reads import MetricReads
from projections.positions import ViewPositions
from projections.reads import FleetReads, TaskReads
from projections.runner import ProjectionRunner, View, reset_view
from projections.scaling_reads import ScalingReads
from projections.schedule_reads import ScheduleReads
from projections.schema import VIEW_MIGRATIONS
from projections.stage_reads import StageReads
from runtime.claims import ClaimBoard
from runtime.dispatcher import Dispatcher
from runtime.live import TOPICS as LIVE_TOPICS
from runtime.live import LiveIndex, LiveIndexFeed
from runtime.loops import Loop, start_thread
from runtime.mailbox import TOPICS as MAIL_TOPICS
from runtime.mailbox import Mailbox
from runtime.message_claims import MessageBoard
from runtime.performance import LivePerformance
from runtime.postman import Postman
from runtime.reaper import LeaseReaper
from runtime.scaling.book import TOPICS as BOOK_TOPICS
from runtime.scaling.book import LaunchBook
from runtime.scaling.launcher import Launcher
from runtime.scaling.scaler import Autoscaler
from runtime.scheduler import Scheduler
from store.chain import EVENT_LOG_MIGRATIONS
from store.database import eventsourcing_env
from store.follower import RecentEvents
from store.health import DatabaseGate, postgres_probe
from store.history import History
from store.leadership import Leadership
from store.liveness import LIVENESS_MIGRATIONS, Liveness
from store.migrations import Migration
from store.migrations import migrate as apply_migrations
from store.recorder import APPEND_MIGRATIONS, HiveRecorder
from store.shared_log import SharedLog

if TYPE_CHECKING:
    from api.container import Container

log = logging.getLogger(__name__)

ROLES = ("all", "api", "engine")
MIGRATIONS: list[Migration] = [
    *EVENT_LOG_MIGRATIONS,
    *APPEND_MIGRATIONS,
    *VIEW_MIGRATIONS,
    *MESSAGE_MIGRATIONS,
    *COUNT_MIGRATIONS,
    *LIVENESS_MIGRATIONS,
]


def migrate(url: str) -> list[Migration]:
    return apply_migrations(url, MIGRATIONS)


def hive_env(url: str, settings: Settings) -> dict[str, str]:
    return {
        **eventsourcing_env(url),
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "store.recorder:HiveRecorder",
        "CREATE_TABLE": "n",
        "POSTGRES_POOL_SIZE": str(settings.db_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.db_pool_size),
        "POSTGRES_CONNECT_TIMEOUT": str(settings.db_connect_timeout_s),
        "POSTGRES_LOCK_TIMEOUT": str(settings.db_lock_timeout_s),
        "POSTGRES_PRE_PING": "n",  # a ping per checkout costs a round trip; retries cover it
    }


def open_hive(url: str, settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Hive:
    return Hive(env=hive_env(url, settings), clock=clock)


def views(settings: Settings | None = None) -> list[View]:
    from projections.performance_view import PerformanceView
    from projections.scaling_view import ScalingView
    from projections.schedules_view import SchedulesView
    from projections.stage_view import StageView
    from projections.tasks_view import TasksView

    alpha = (settings or Settings()).routing_alpha
    return [
        TasksView(),
        FleetView(),
        ScalingView(),
        SchedulesView(),
        PerformanceView(alpha),
        StageView(),
        MessagesView(),
    ]


@dataclass
class Node:
    settings: Settings
    url: str
    role: str = "all"
    clock: Callable[[], datetime] = utc_now  # injected by tests that move time by hand
    hive: Hive = field(init=False)
    pool: ConnectionPool[Any] = field(init=False)
    index: LiveIndex = field(init=False)
    liveness: Liveness = field(init=False)
    runners: list[ProjectionRunner] = field(init=False, default_factory=list)
    loops: list[Loop] = field(init=False, default_factory=list)
    stopping: threading.Event = field(init=False, default_factory=threading.Event)
    threads: list[threading.Thread] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        s = self.settings
        self.hive = open_hive(self.url, s, clock=self.clock)
        self.recorder = cast(HiveRecorder, self.hive.recorder)
        self.pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=s.db_pool_size,
            open=False,
            name="reads",
            timeout=s.db_connect_timeout_s,
            kwargs={"connect_timeout": s.db_connect_timeout_s, "autocommit": True},
        )
        self.index = LiveIndex(clock=self.clock)
        self.performance = LivePerformance(s.routing_alpha)
        self.liveness = Liveness(self.pool)
        recent = RecentEvents(self.hive.mapper.to_domain_event)
        self.hive.listeners.append(recent.remember)
        # What this process writes reaches its live index at once, not a NOTIFY later.
        self.hive.listeners.append(self.index.apply)
        self.book = LaunchBook()
        self.hive.listeners.append(self.book.apply)
        self.mailbox = Mailbox()
        self.hive.listeners.append(self.mailbox.apply)
        self.postman = Postman(self.hive, self.index, self.mailbox, clock=self.clock)
        self.scaler: Autoscaler | None = None
        self.scaling_stop = threading.Event()
        decode = recent.decode
        observers: list[Callable[[list[tuple[int, Any]]], None]] = [
            self.hive.observe,
            self.book.apply,
            self.mailbox.apply,
        ]
        if self.serves_engine:  # learning hears each event once, in log order, from the feed
            observers.append(self.performance.follow)
        # One LISTEN connection and one reading of each stretch of the log for all the
        # process's followers (the live index's feed and every view runner).
        self.log = SharedLog(
            self.recorder,
            self.url,  # type: ignore[arg-type]
            page_size=s.projection_page,
            poll_interval=s.poll_interval_s,
        )
        self.feed = LiveIndexFeed(
            self.index,
            self.log.follower(
                (*LIVE_TOPICS, *BOOK_TOPICS, *MAIL_TOPICS),
                # With role "all" this process's own writes reach the index directly; the
                # feed only confirms them, so it may take its time. Elsewhere it must not.
                settle_s=0.005 if self.role == "all" else 0.0,
            ),
            decode,
            observers=observers,
        )
        if self.serves_engine:
            self.runners = [
                ProjectionRunner(
                    v,
                    self.recorder,
                    decode,
                    self.url,  # type: ignore[arg-type]
                    page_size=s.projection_page,
                    poll_interval=s.poll_interval_s,
                    shared=self.log,
                )
                for v in views(s)
            ]
            self.dispatcher = Dispatcher(
                self.hive,
                self.index,
                self.performance,
                page=s.dispatch_page,
                config=RoutingConfig(aging=Aging(s.routing_aging_s)),
                # A task only a pool's bots could do is not unroutable: the pool grows.
                can_launch=lambda needs: any(needs <= set(p.capabilities) for p in s.pools),
            )
            self.reaper = LeaseReaper(
                self.hive, self.index, self.liveness, grace_s=s.bot_lease_ttl_s
            )
            self.loops = [
                Loop(
                    "dispatcher",
                    self.dispatcher.run_once,
                    s.poll_interval_s,
                    self.dispatcher.wake,
                    self.dispatcher.wait_hint,
                ),
                Loop("reaper", self.reaper.run_once, s.reaper_interval_s),
            ]
            self.scheduler = Scheduler(
                self.hive, self.index, ScheduleReads(self.pool).timetable, clock=self.clock
            )
            self.loops.append(
                Loop(
                    "scheduler",
                    self.scheduler.run_once,
                    s.poll_interval_s,
                    self.scheduler.wake,
                    self.scheduler.wait_hint,
                )
            )
            self.mailbox.listeners.append(lambda _: self.postman.wake.set())
            # Not on every task event: only a bot coming or going changes who may get mail.
            self.index.listeners.append(lambda c: self.postman.wake.set() if c.fleet else None)
            self.loops.append(
                Loop(
                    "postman",
                    self.postman.run_once,
                    s.poll_interval_s,
                    self.postman.wake,
                    self.postman.wait_hint,
                )
            )
        if self.serves_api:
            self.positions = ViewPositions(self.pool, self.url, ("tasks",))
            self.claims = ClaimBoard(self.hive, self.index)
            self.messages = MessageBoard(
                self.hive, self.mailbox, s.message_visibility_s, clock=self.clock
            )
            self.tasks = TaskReads(self.pool)
            self.fleet = FleetReads(self.pool)
            self.schedules = ScheduleReads(self.pool)
            self.schedule_positions = ViewPositions(self.pool, self.url, ("schedules",))
            self.broadcast = ViewBroadcast()  # the dashboard's live stream
            self.positions.listeners.append(self.broadcast.heard)
            self.gate = DatabaseGate(postgres_probe(self.url))
            self.mode_watch = ModeWatch(
                lambda: checks_of(self, self.gate), self.broadcast.mode_changed
            )
            self.stages = StageReads(self.pool)

    @property
    def serves_api(self) -> bool:
        return self.role in ("all", "api")

    @property
    def serves_engine(self) -> bool:
        return self.role in ("all", "engine")

    def start(self, *, ready_within_s: float = 60.0) -> Node:
        self.pool.open(wait=True, timeout=ready_within_s)
        with psycopg.connect(self.url, connect_timeout=self.settings.db_connect_timeout_s) as c:
            self.index.load(c)
            self._load_book(c)
            self._load_mailbox(c)
            if self.serves_engine:
                self._load_performance(c)
        for runner in self.runners:
            self._spawn(f"view-{runner.view.name}", partial(runner.run, self.stopping))
        self._spawn("live-index", lambda: self.feed.run(self.stopping))
        if not self.feed.caught_up.wait(ready_within_s):
            raise TimeoutError("the live index did not catch up with the log in time")
        for loop in self.loops:
            lead = Leadership(self.url, loop.name)
            self._spawn(f"loop-{loop.name}", partial(loop.run, lead, self.stopping))
        if self.serves_api:
            self.positions.start()
            self.schedule_positions.start()
            self._spawn("mode-watch", partial(self.mode_watch.run, self.stopping))
        log.info("node started", extra={"action": "node_started", "role": self.role})
        return self

    def _load_book(self, conn: psycopg.Connection[Any]) -> None:
        """The launch book from its view, brought up to where the live feed will start."""
        position = self.book.load(conn)
        while position < self.index.position:
            page = self.recorder.select_notifications(
                position + 1, 500, stop=self.index.position, topics=BOOK_TOPICS
            )
            if not page:
                break
            self.book.apply((n.id, self.hive.mapper.to_domain_event(n)) for n in page)
            position = page[-1].id

    def _load_mailbox(self, conn: psycopg.Connection[Any]) -> None:
        """The mailbox from its view, brought up to where the live feed will start."""
        position = self.mailbox.load(conn)
        while position < self.index.position:
            page = self.recorder.select_notifications(
                position + 1, 500, stop=self.index.position, topics=MAIL_TOPICS
            )
            if not page:
                break
            self.mailbox.apply([(n.id, self.hive.mapper.to_domain_event(n)) for n in page])
            position = page[-1].id

    def _load_performance(self, conn: psycopg.Connection[Any]) -> None:
        """What the hive learned, from its view, brought up to where the live feed will
        start (from there on the feed tells it; what it knows already it passes over)."""
        position = self.performance.load(conn)
        while position < self.index.position:
            page = self.recorder.select_notifications(
                position + 1, 500, stop=self.index.position, topics=RUN_TOPICS
            )
            if not page:
                break
            self.performance.follow([(n.id, self.hive.mapper.to_domain_event(n)) for n in page])
            position = page[-1].id

    def start_scaling(self, launcher: Launcher) -> Autoscaler | None:
        """Run the autoscaler (led by one engine at a time) over the configured pools."""
        if not self.serves_engine or not self.settings.pools:
            launcher.close()
            return None
        self.scaler = Autoscaler(self.hive, self.index, self.book, self.settings.pools, launcher)
        loop = Loop(
            "scaler", self.scaler.run_once, self.settings.scaler_interval_s, self.scaler.wake
        )
        self._spawn(
            "loop-scaler", partial(loop.run, Leadership(self.url, loop.name), self.scaling_stop)
        )
        self.loops.append(loop)
        return self.scaler

    def stop_scaling(self) -> None:
        """Stop sizing pools, then stop the bots this engine launched (they drain first)."""
        self.scaling_stop.set()
        if self.scaler is not None:
            self.scaler.wake.set()
            self.scaler.close()

    def stop(self) -> None:
        self.stop_scaling()
        self.stopping.set()
        for loop in self.loops:
            if loop.wake is not None:
                loop.wake.set()
        for thread in self.threads:
            thread.join(timeout=10)
        if self.serves_api:
            self.positions.stop()
            self.schedule_positions.stop()
        self.pool.close()
        self.hive.close()

    def check(self) -> dict[str, str]:
        """Readiness: each component and whether it is ok."""
        checks: dict[str, str] = {}
        try:
            with self.pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")
            checks["database"] = "ok"
        except Exception as e:  # any failure to reach the database means: not ready
            checks["database"] = f"unreachable ({type(e).__name__})"
        for runner in self.runners:
            checks[f"view:{runner.view.name}"] = "ok" if runner.healthy.is_set() else "restarting"
        checks["live-index"] = "ok" if self.feed.caught_up.is_set() else "catching up"
        return checks

    def container(self) -> Container:
        from api.auth import KeyRing
        from api.container import Container
        from api.metrics import HiveCollector, Scrape

        return Container(
            settings=self.settings,
            hive=self.hive,
            tasks=self.tasks,
            fleet=self.fleet,
            schedules=self.schedules,
            positions=self.positions,
            schedule_positions=self.schedule_positions,
            claims=self.claims,
            liveness=self.liveness,
            presence=self.index,
            readiness=self,
            keys=KeyRing(self.hive),
            gate=self.gate,
            scaling=ScalingReads(self.pool),
            dashboard=DashboardReads(self.pool),
            history=History(self.pool, self.hive.mapper),
            broadcast=self.broadcast,
            stages=self.stages,
            metrics=Scrape(
                HiveCollector(
                    MetricReads(self.pool), self.stages, self.recorder.max_notification_id
                )
            ),
            messages=self.messages,
            postman=self.postman,
            message_reads=MessageReads(self.pool),
        )

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        self.threads.append(start_thread(name, target))


def rebuild_views(url: str, settings: Settings, which: str = "all") -> dict[str, int]:
    """Empty the chosen views and replay the log into them (a running engine joins in)."""
    hive = open_hive(url, settings)
    try:
        done: dict[str, int] = {}
        for view in views(settings):
            if which not in ("all", view.name):
                continue
            reset_view(url, view)
            runner = ProjectionRunner(
                view,
                cast(HiveRecorder, hive.recorder),
                hive.mapper.to_domain_event,
                url,
                page_size=settings.projection_page,
            )
            done[view.name] = runner.catch_up()
        return done
    finally:
        hive.close()
