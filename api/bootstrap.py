"""The composition root: builds one process's share of the hive from Settings and a URL.

Nothing else in the code base constructs infrastructure. A ``Node`` plays one or both roles:
``api`` (HTTP: commands, reads, the claim long-poll) and ``engine`` (view runners and the
control loops). ``all`` is one process for one machine. Every node has the same parts (the
log, the live models, the boards the API serves); the role decides what runs: the features
(``api/features/``) contribute the views and loops an engine runs and the routes an API
serves, and one ``Lifecycle`` starts and stops every thread in order.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import psycopg
from psycopg_pool import ConnectionPool

from api.dashboard.readiness import ReadinessWatch, checks_of
from api.dashboard.stream import ViewBroadcast
from api.features import Feature
from api.features.catalog import FEATURES
from api.lifecycle import Lifecycle
from api.mode_gate import HiveModeNow
from api.settings import Settings
from domain.cause import Cause
from domain.hive import Hive, utc_now
from domain.modes import DEGRADED
from domain.policies.degradation import failing_pool
from projections.bulk import restore_indexes
from projections.dashboard_reads import DashboardReads
from projections.incident_reads import IncidentReads
from projections.key_reads import KeyReads
from projections.message_reads import MessageReads
from projections.metric_reads import MetricReads
from projections.positions import ViewPositions
from projections.process_stats import ProcessStats
from projections.profile_reads import ProfileReads
from projections.reads import FleetReads, TaskReads
from projections.redrive_reads import RedriveReads
from projections.runner import ProjectionRunner, View, reset_view
from projections.scaling_reads import ScalingReads
from projections.schedule_reads import ScheduleReads
from projections.stage_reads import StageReads
from projections.timings import ProcessTimings
from runtime.claims import ClaimBoard
from runtime.config import Knobs
from runtime.live import LiveBot, LiveIndex
from runtime.live_config import LiveConfig
from runtime.live_mode import LiveMode
from runtime.loops import Loop
from runtime.mailbox import Mailbox
from runtime.message_claims import MessageBoard
from runtime.models import LiveFeed, LiveModel, topics_of
from runtime.performance import LivePerformance
from runtime.postman import Postman
from runtime.process_timings import MeasuredProcessTimings
from runtime.profiler import Profiler
from runtime.resources import ResourceMeter
from runtime.scaling.book import LaunchBook
from runtime.scaling.launcher import Launcher
from runtime.scaling.scaler import Autoscaler
from store.database import eventsourcing_env
from store.follower import RecentEvents
from store.gated_pool import GatedPool, gate_datastore
from store.health import DatabaseGate, DatabaseUnavailable, postgres_probe
from store.history import History
from store.key_use import KeyUse, KeyUseWriter
from store.leadership import Leadership
from store.liveness import Liveness
from store.migrations import Migration
from store.migrations import migrate as apply_migrations
from store.processes import BEAT_S, Beat, Processes, Resources, health_of
from store.recorder import HiveRecorder
from store.shared_log import SharedLog

if TYPE_CHECKING:
    from api.container import Container

log = logging.getLogger(__name__)

ROLES = ("all", "api", "engine")
MINUTES_EVERY_S = 5.0  # how often the beat writes this process's current minute of timings
MB = 1024 * 1024
MIGRATIONS: list[Migration] = sorted(
    (m for f in FEATURES for m in f.migrations()), key=lambda m: m.version
)


def migrate(url: str) -> list[Migration]:
    return apply_migrations(url, MIGRATIONS)


def hive_env(url: str, settings: Settings) -> dict[str, str]:
    return {
        **eventsourcing_env(url),
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "TRANSCODER_TOPIC": "store.transcoder:FastJSONTranscoder",
        "APPLICATION_RECORDER_TOPIC": "store.recorder:HiveRecorder",
        "CREATE_TABLE": "n",
        "POSTGRES_POOL_SIZE": str(settings.db_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.db_pool_size),
        "POSTGRES_CONNECT_TIMEOUT": str(settings.db_connect_timeout_s),
        "POSTGRES_LOCK_TIMEOUT": str(settings.db_lock_timeout_s),
        "POSTGRES_PRE_PING": "n",  # a ping per checkout costs a round trip; retries cover it
    }


def open_hive(
    url: str,
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    gate: DatabaseGate | None = None,
) -> Hive:
    """The hive's log; with ``gate``, its connections are a ``GatedPool``'s (a server's
    process: fail fast while the database is away, reconnect the moment it is back)."""
    hive = Hive(env=hive_env(url, settings), clock=clock)
    if gate is not None:
        gate_datastore(cast(HiveRecorder, hive.recorder).datastore, gate)
    return hive


def views(settings: Settings | None = None, features: list[Feature] = FEATURES) -> list[View]:
    """Every view the features keep, as an engine runs them."""
    return [v for group in view_groups(settings, features) for v in group]


def view_groups(
    settings: Settings | None = None, features: list[Feature] = FEATURES
) -> list[list[View]]:
    """The views, grouped by the feature that keeps them: a group is kept by one runner,
    each page in one transaction (``projections/runner.py``)."""
    settings = settings or Settings()
    return [group for f in features if (group := list(f.views(settings)))]


class Node:
    def __init__(
        self,
        settings: Settings,
        url: str,
        role: str = "all",
        clock: Callable[[], datetime] = utc_now,  # injected by tests that move time by hand
        features: list[Feature] = FEATURES,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        self.settings, self.url, self.role, self.clock = settings, url, role, clock
        s = settings
        self.gate = DatabaseGate(postgres_probe(url))
        self.hive = open_hive(url, s, clock=clock, gate=self.gate)
        self.recorder = cast(HiveRecorder, self.hive.recorder)
        self.pool: ConnectionPool[Any] = GatedPool(
            url,
            min_size=1,
            max_size=s.db_pool_size,
            open=False,
            name="reads",
            timeout=s.db_connect_timeout_s,
            kwargs={"connect_timeout": s.db_connect_timeout_s, "autocommit": True},
            gate=self.gate,
        )
        self.lifecycle = Lifecycle()
        self.ready_within_s = 60.0
        self.liveness = Liveness(self.pool)
        self.process_id = uuid.uuid4()
        self.processes = Processes(self.pool)
        self.leaderships: dict[str, Leadership] = {}
        self._beat_now = threading.Event()
        # -- what the process measures of itself: timings per minute, its resources ----
        self.timings = ProcessTimings()
        self.recorder.on_append = self.timings.saved
        self.process_stats = ProcessStats(self.pool)
        self.meter = ResourceMeter({"reads": self.pool, "log": self.recorder.datastore.pool})
        self.resources: Resources | None = None  # as sampled at the last beat
        # -- the live models: from their views, then the log ---------------------------
        self.config = LiveConfig(Knobs.of(settings))  # the knobs in force, for every part
        self._settings_now: tuple[int, Settings] = (-1, settings)
        self.index = LiveIndex(clock=clock)
        self.book = LaunchBook()
        self.mailbox = Mailbox()
        self.performance = LivePerformance(s.routing_alpha)
        self.mode = LiveMode()  # the hive's mode as recorded: every process acts on it
        self.models: list[LiveModel] = [
            self.config,
            self.mode,
            self.index,
            self.book,
            self.mailbox,
        ]
        if self.serves_engine:  # routing learns in engines only, from the feed, in log order
            self.models.append(self.performance)
        # -- what requests use: cheap objects, no threads of their own ------------------
        self.postman = Postman(self.hive, self.index, self.mailbox, clock=clock)
        self.claims = ClaimBoard(self.hive, self.index)
        self.messages = MessageBoard(self.hive, self.mailbox, s.message_visibility_s, clock=clock)
        self.tasks = TaskReads(self.pool)
        self.fleet = FleetReads(self.pool)
        self.schedules = ScheduleReads(self.pool)
        self.stages = StageReads(self.pool)
        self.positions = ViewPositions(self.pool, url, ("tasks",))
        self.schedule_positions = ViewPositions(self.pool, url, ("schedules",))
        self.broadcast = ViewBroadcast()  # the dashboard's live stream
        self.positions.listeners.append(self.broadcast.heard)
        self.readiness_watch = ReadinessWatch(
            lambda: checks_of(self, self.gate), self.broadcast.mode_changed, self._badge_mode
        )
        # The mode this process acts on: the log's, or critical as far as it can tell. An
        # engine process is an engine alive; elsewhere the readiness watch says.
        self.modes = HiveModeNow(
            self.mode,
            self.gate,
            (lambda: True) if self.serves_engine else lambda: self.readiness_watch.engine_alive,
        )
        self.mode.on_change(lambda _: self.readiness_watch.tell())
        self.broadcast.hold_s = self.modes.stream_hold_s  # the push coalesces more, degraded
        self.incident_positions = ViewPositions(self.pool, url, ("incidents",))
        self.positions.listeners.append(self.incident_positions.heard)  # one LISTEN for both
        # -- the autoscaler: started once HTTP listens (launched bots need it) ---------
        self.scaler: Autoscaler | None = None
        self.scaling_stop = threading.Event()
        from api.auth import KeyRing  # (the web framework: not for `apiary db migrate`)

        self.keys = KeyRing(self.hive)  # every request's key; forgets one when the log moves it
        self.key_uses = KeyUseWriter(KeyUse(self.pool), self.keys.take_uses)
        # -- what the features add: models; an engine's views and loops ----------------
        self.models += [m for f in features for m in f.models(self)]
        self.runners: list[ProjectionRunner] = []
        self.loops: list[Loop] = []
        # -- following the log: one LISTEN and one reading for every follower ----------
        recent = self.recent = RecentEvents(self.hive.mapper.to_domain_event)
        self.hive.listeners.append(recent.remember)
        for model in self.models:  # what this process writes reaches them at once
            if model.takes_own_writes:
                self.hive.listeners.append(model.apply)
        self.log = SharedLog(
            self.recorder,
            url,  # type: ignore[arg-type]
            page_size=s.projection_page,
            poll_interval=s.poll_interval_s,
        )
        self.feed = LiveFeed(
            self.models,
            self.log.follower(
                topics_of(self.models),
                # With role "all" this process's own writes reach the models directly; the
                # feed only confirms them, so it may take its time. Elsewhere it must not.
                settle_s=0.005 if role == "all" else 0.0,
            ),
            recent.decode,
            observers=[self.hive.observe],  # the kernel's cache follows the log too
        )
        if self.serves_engine:
            self.runners = [
                ProjectionRunner(
                    group,
                    self.recorder,
                    recent.decode,
                    url,  # type: ignore[arg-type]
                    page_size=s.projection_page,
                    poll_interval=s.poll_interval_s,
                    shared=self.log,
                    timings=self.timings,
                )
                for group in view_groups(s, features)
            ]
            self.loops = [loop for f in features for loop in f.loops(self)]
            for loop in self.loops:
                loop.timings = self.timings
        self.config.on_change(self._configure)
        self._plan_lifecycle()

    @property
    def serves_api(self) -> bool:
        return self.role in ("all", "api")

    @property
    def serves_engine(self) -> bool:
        return self.role in ("all", "engine")

    def _plan_lifecycle(self) -> None:
        """In order: the reads pool; the models from their views; the view runners; the
        feed, caught up before anything else starts; the loops; the API's listeners."""
        life = self.lifecycle
        life.add("reads-pool", self._open_pool, self.pool.close)
        if self.serves_engine:  # indexes a rebuild dropped, and died before it put back
            life.add("view-indexes", partial(restore_indexes, self.url))
        life.add("live-models", self._load_models)
        for runner in self.runners:
            life.thread(f"view-{runner.name}", runner.run)
        life.thread("live-feed", self.feed.run)
        life.add("live-feed-caught-up", self._wait_for_the_feed)
        life.add("config-seeded", self._seed_config)
        for loop in self.loops:
            lead = self.leaderships[loop.name] = Leadership(self.url, loop.name)
            life.thread(f"loop-{loop.name}", partial(loop.run, lead), wake=loop.wake_up)
        life.add("process-row", self.beat, self._leave)
        life.thread("process-beat", self._beating, wake=self._beat_now.set)
        if self.serves_api:
            life.add("positions", self.positions.start, self.positions.stop)
            life.add(
                "schedule-positions", self.schedule_positions.start, self.schedule_positions.stop
            )
            life.thread("readiness-watch", self.readiness_watch.run)
            life.thread("key-use", self.key_uses.run)

    def loop(self, name: str) -> Loop:
        """The engine's loop of that name (``KeyError`` in a process that runs none)."""
        for loop in self.loops:
            if loop.name == name:
                return loop
        raise KeyError(name)

    def start(self, *, ready_within_s: float = 60.0) -> Node:
        self.ready_within_s = ready_within_s
        self.lifecycle.start()
        log.info("node started", extra={"action": "node_started", "role": self.role})
        return self

    def beat(self) -> None:
        """Tell the hive this process is alive, what it runs, leads and has applied, and
        what it uses."""
        self.resources = self.meter.sample()
        self.processes.beat(
            Beat(
                self.process_id,
                self.role,
                socket.gethostname(),
                os.getpid(),
                self.config.version,
                sorted(self.leaderships),
                sorted(name for name, lead in self.leaderships.items() if lead.leading),
                self.resources,
            )
        )

    def record_minutes(self) -> None:
        """Write this process's current and just-ended minute of timings (for any
        process's ``ProcessStats.window``); older minutes of every process go."""
        self.process_stats.write(
            self.process_id,
            self.role,
            socket.gethostname(),
            os.getpid(),
            self.timings.recent(),
        )

    def _beating(self, stop: threading.Event) -> None:
        recorded = time.monotonic()
        while not stop.is_set():
            self._beat_now.wait(BEAT_S)
            self._beat_now.clear()
            if stop.is_set():
                return
            try:
                self.beat()
                if time.monotonic() - recorded >= MINUTES_EVERY_S:
                    recorded = time.monotonic()
                    self.record_minutes()
            except (psycopg.Error, DatabaseUnavailable) as e:  # away: readiness says so
                log.warning(
                    "process beat failed",
                    extra={"action": "beat_failed", "error": type(e).__name__},
                )

    def _leave(self) -> None:
        """A clean stop: the last of its timings written, its row taken away."""
        try:
            self.record_minutes()
        except (psycopg.Error, DatabaseUnavailable) as e:  # lost: an hour's soft state
            log.warning(
                "last timings not written",
                extra={"action": "beat_failed", "error": type(e).__name__},
            )
        self.processes.forget(self.process_id)

    def _open_pool(self) -> None:
        self.pool.open(wait=True, timeout=self.ready_within_s)

    def _load_models(self) -> None:
        with psycopg.connect(self.url, connect_timeout=self.settings.db_connect_timeout_s) as c:
            for model in self.models:
                model.load(c)

    def _seed_config(self) -> None:
        """A new hive's first config version: this process's knobs (a no-op when another
        process seeded it first)."""
        if self.config.version == 0:
            self.hive.config.seed(
                Knobs.of(self.settings).document(),
                "seeded from the environment of the first process",
                Cause(f"process:{self.role}", "config-seed"),
            )

    def _configure(self, knobs: Knobs) -> None:
        """What the node's own parts take from the config in force."""
        self.hive.kernel.cache.resize(knobs.aggregate_cache_mb * MB)
        self.timings.enabled = knobs.profiling
        self.hive.tasks.policies = knobs.retry.policies()
        self.modes.configure(knobs.degradation)
        self.recent.resize(knobs.decoded_events_mb * MB)
        self.messages.visibility_s = knobs.message_visibility_s
        self.claims.config_changed()  # waiting bots hear of it now
        self._beat_now.set()  # and the hive hears this process applied it
        self.log.resize(knobs.projection_page)
        for runner in self.runners:
            runner.page_size = knobs.projection_page
        if self.scaler is not None:
            self.scaler.configure(knobs.pools)

    def settings_now(self) -> Settings:
        """The environment's settings with the knobs of the config in force."""
        version, settings = self._settings_now
        if version != self.config.version:
            knobs = self.config.knobs
            settings = self.settings.model_copy(
                update={name: getattr(knobs, name) for name in Knobs.model_fields}
            )
            self._settings_now = (self.config.version, settings)
        return settings

    def _wait_for_the_feed(self) -> None:
        if not self.feed.caught_up.wait(self.ready_within_s):
            raise TimeoutError("the live models did not catch up with the log in time")

    def start_scaling(self, launcher: Launcher) -> Autoscaler | None:
        """Run the autoscaler (led by one engine at a time) over the configured pools."""
        if not self.serves_engine:
            launcher.close()
            return None
        knobs = self.config.knobs
        self.scaler = Autoscaler(self.hive, self.index, self.book, knobs.pools, launcher)
        self.scaler.holding = self._holding_launches
        loop = Loop("scaler", self.scaler.run_once, knobs.scaler_interval_s, self.scaler.wake)
        loop.timings = self.timings
        self.config.on_change(lambda k: setattr(loop, "interval", k.scaler_interval_s))
        lead = self.leaderships[loop.name] = Leadership(self.url, loop.name)
        self.lifecycle.thread(
            "loop-scaler", lambda _: loop.run(lead, self.scaling_stop), wake=loop.wake_up
        )
        self.lifecycle.start()
        self.loops.append(loop)
        return self.scaler

    def _holding_launches(self, pool: str, bots: list[LiveBot], now: datetime) -> str | None:
        """Degraded: no launch into a pool whose bots keep failing (the healthy scale)."""
        if self.mode.mode != DEGRADED:
            return None
        window_s = self.config.knobs.degradation.failing_window_s
        if failing_pool([(b.state, b.failed_at) for b in bots], now, window_s):
            return f"degraded, and the pool's bots keep failing (within {window_s:g} s)"
        return None

    def stop_scaling(self) -> None:
        """Stop sizing pools, then stop the bots this engine launched (they drain first)."""
        self.scaling_stop.set()
        if self.scaler is not None:
            self.scaler.wake.set()
            self.scaler.close()

    def stop(self) -> None:
        self.stop_scaling()
        self.lifecycle.stop()
        self.gate.close()
        self.hive.close()

    def check(self) -> dict[str, str]:
        """Readiness: each part of this process, and the hive's own health (an engine
        runs somewhere; every loop the engines run has a leader), and whether it is ok."""
        checks: dict[str, str] = {}
        try:
            with self.pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")
            checks["database"] = "ok"
            checks.update(health_of(self.processes.live()))
        except Exception as e:  # any failure to reach the database means: not ready
            checks["database"] = f"unreachable ({type(e).__name__})"
        for runner in self.runners:
            for name in runner.names:
                checks[f"view:{name}"] = "ok" if runner.healthy.is_set() else "restarting"
        checks["live-index"] = "ok" if self.feed.caught_up.is_set() else "catching up"
        return checks

    def container(self) -> Container:
        from api.container import Container
        from api.dashboard.session_book import SessionBook
        from api.metrics import HiveCollector, IncidentCollector, Scrape
        from api.process_metrics import ProcessCollector
        from api.throttle import Throttle

        throttle = Throttle()  # the API's rate limits, as the config in force says
        incidents = IncidentReads(self.pool)
        self.config.on_change(throttle.configure)

        return Container(
            settings_now=self.settings_now,
            config_version=lambda: self.config.version,
            hive=self.hive,
            tasks=self.tasks,
            fleet=self.fleet,
            schedules=self.schedules,
            positions=self.positions,
            schedule_positions=self.schedule_positions,
            claims=self.claims,
            liveness=self.liveness,
            presence=self.index,
            processes=self.processes,
            readiness=self,
            keys=self.keys,
            gate=self.gate,
            scaling=ScalingReads(self.pool),
            dashboard=DashboardReads(self.pool),
            history=History(self.pool, self.hive.mapper),
            sessions=SessionBook(self.hive),
            broadcast=self.broadcast,
            stages=self.stages,
            metrics=Scrape(
                HiveCollector(
                    MetricReads(self.pool),
                    self.stages,
                    self.recorder.max_notification_id,
                    self.modes.effective,
                ),
                ProcessCollector(self.timings, lambda: self.resources),
                IncidentCollector(incidents),
            ),
            messages=self.messages,
            postman=self.postman,
            message_reads=MessageReads(self.pool),
            key_reads=KeyReads(self.pool),
            redrive=RedriveReads(self.pool),
            throttle=throttle,
            process_stats=self.process_stats,
            timings=self.timings,
            modes=self.modes,
            incidents=incidents,
            incident_positions=self.incident_positions,
            profile=Profiler(
                ProfileReads(self.pool),
                lambda: self.config.knobs,
                self.index,
                MeasuredProcessTimings(self.process_stats, self.index.pending_count),
                self.clock,
            ),
        )

    def _badge_mode(self) -> dict[str, Any]:
        """The hive's mode as the dashboard's badge shows it."""
        from api.schemas.modes import ModePublic

        return ModePublic.of(self.modes).model_dump(mode="json")


REBUILD_PAGE = 30_000  # events per transaction when replaying the log into emptied views


@dataclass(frozen=True)
class Rebuilt:
    """A replay of the log into emptied views: where each got to, and what each cost."""

    positions: dict[str, int]
    apply_s: dict[str, float]  # time in each view's own apply (its reads, its folding)
    events: dict[str, int]  # events each view applied
    took_s: float  # the whole replay: reading, decoding and committing included


def rebuild_views(url: str, settings: Settings, which: str = "all") -> dict[str, int]:
    """Empty the chosen views and replay the log into them (a running engine joins in)."""
    return replay_views(url, settings, which).positions


def replay_views(url: str, settings: Settings, which: str = "all") -> Rebuilt:
    """``rebuild_views``, with what each view cost. One runner keeps all of them: the log
    is read and decoded once, each page applied to every view in one transaction; in large
    pages, so that most of a task's events fold into one row write."""
    hive = open_hive(url, settings)
    try:
        chosen = [v for v in views(settings) if which in ("all", v.name)]
        if not chosen:
            return Rebuilt({}, {}, {}, 0.0)
        restore_indexes(url)  # a rebuild that died before it had put them back
        started = time.perf_counter()
        try:
            for view in chosen:  # without their secondary indexes until the log is replayed
                reset_view(url, view, deferring_indexes=True)
            runner = ProjectionRunner(
                chosen,
                cast(HiveRecorder, hive.recorder),
                hive.mapper.to_domain_event,
                url,
                page_size=max(settings.projection_page, REBUILD_PAGE),
            )
            runner.catch_up()
        finally:
            restore_indexes(url)
        took = time.perf_counter() - started
        return Rebuilt(dict(runner.positions), runner.apply_s, runner.applied_events, took)
    finally:
        hive.close()
