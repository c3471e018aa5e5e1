"""The autoscaler's round against the in-memory hive, with a fake launcher and clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from domain.cause import Cause
from domain.hive import Hive, TaskSpec
from domain.launches import Launch, LaunchState
from runtime.live import LiveBot, LiveIndex
from runtime.scaling.book import LaunchBook
from runtime.scaling.launcher import BotTemplate
from runtime.scaling.pools import PoolConfig
from runtime.scaling.scaler import Autoscaler
from tests.clock import FakeClock

ALICE = Cause("alice", "req")


class FakeLauncher:
    """Starts nothing: records what it was asked, fails on demand, exits on demand."""

    name = "fake"

    def __init__(self) -> None:
        self.started: list[UUID] = []
        self.stopped: list[tuple[UUID, bool]] = []
        self.broken = False
        self.gone: dict[UUID, int | None] = {}

    def launch(self, launch_id: UUID, template: BotTemplate) -> None:
        if self.broken:
            raise OSError("no such file: apiary")
        self.started.append(launch_id)

    def stop(self, launch_id: UUID, *, kill: bool = False) -> None:
        self.stopped.append((launch_id, kill))

    def exited(self) -> dict[UUID, int | None]:
        gone, self.gone = self.gone, {}
        return gone

    def owns(self, launch_id: UUID) -> bool:
        return launch_id in self.started

    def close(self) -> None:
        pass


def world(**pool: object) -> tuple[Hive, Autoscaler, FakeLauncher, FakeClock]:
    clock = FakeClock()
    hive = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock)
    index, book = LiveIndex(), LaunchBook()
    hive.listeners += [index.apply, book.apply]
    launcher = FakeLauncher()
    config = PoolConfig(name="coders", capabilities=["code"], up_cooldown_s=0, **pool)  # type: ignore[arg-type]
    scaler = Autoscaler(hive, index, book, [config], launcher, clock=clock)
    return hive, scaler, launcher, clock


def test_backlog_launches_bots_and_their_registration_closes_the_launch() -> None:
    hive, scaler, launcher, _ = world(max_bots=3, max_concurrency=2, max_step=3)
    hive.tasks.submit([TaskSpec("code")] * 5, ALICE)
    scaler.run_once()
    assert len(launcher.started) == 3
    assert scaler.run_once() == 0  # the launches on their way count: nothing more to do
    bot, _, _ = hive.fleet.register(
        name="c1",
        capabilities=["code"],
        max_concurrency=2,
        version_label="v",
        cause=ALICE,
        pool="coders",
        launch_id=launcher.started[0],
    )
    assert hive.get(Launch, launcher.started[0]).bot_id == bot.id


def test_a_launch_that_cannot_start_fails_and_the_pool_backs_off() -> None:
    hive, scaler, launcher, clock = world(max_bots=1)
    launcher.broken = True
    hive.tasks.submit([TaskSpec("code")], ALICE)
    scaler.run_once()
    failed = [lx for lx in scaler.book.launches.values()]
    assert failed == []  # closed at once
    assert scaler.book.pool("coders").failures_in_a_row == 1
    launcher.broken = False
    scaler.run_once()
    assert launcher.started == []  # still backing off (2 s after one failure)
    clock.now += timedelta(seconds=2.5)
    scaler.run_once()
    assert len(launcher.started) == 1


def test_a_launch_that_never_registers_is_given_up_and_replaced() -> None:
    hive, scaler, launcher, clock = world(max_bots=1, launch_timeout_s=5)
    hive.tasks.submit([TaskSpec("code")], ALICE)
    scaler.run_once()
    first = launcher.started[0]
    clock.now += timedelta(seconds=6)
    scaler.run_once()
    assert (first, True) in launcher.stopped
    gone = hive.get(Launch, first)
    assert gone.state is LaunchState.FAILED
    clock.now += timedelta(seconds=3)  # past the backoff of one failure
    scaler.run_once()
    assert len(launcher.started) == 2


def test_a_process_that_exits_closes_its_launch() -> None:
    hive, scaler, launcher, _ = world(max_bots=1)
    hive.tasks.submit([TaskSpec("code")], ALICE)
    scaler.run_once()
    launch_id = launcher.started[0]
    launcher.gone[launch_id] = 1
    scaler.run_once()
    assert hive.get(Launch, launch_id).state is LaunchState.FAILED  # it never registered


def test_a_held_pool_launches_nothing_and_scales_once_let_go() -> None:
    """The hive's mode may hold a pool's launches (degraded, its bots failing): the plan
    stands, nothing starts; once let go, the launches go ahead."""
    hive, scaler, launcher, _ = world(max_bots=2, max_concurrency=1, max_step=2)
    asked: list[str] = []

    def holding(pool: str, bots: list[LiveBot], now: datetime) -> str | None:
        asked.append(pool)
        return "degraded, and the pool's bots keep failing"

    scaler.holding = holding
    hive.tasks.submit([TaskSpec("code")] * 4, ALICE)
    scaler.run_once()
    assert launcher.started == [] and asked == ["coders"]
    scaler.holding = lambda pool, bots, now: None
    scaler.run_once()
    assert len(launcher.started) == 2
