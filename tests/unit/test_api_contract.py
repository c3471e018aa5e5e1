"""The HTTP contract (docs/http-api.md), driven through ``create_app`` with a real Hive.

The Hive runs on the library's in-memory recorder (one test runs it on SQLite, to make the
database refuse for real); the ports we own (views, claims, liveness, readiness) are small
in-memory fakes that answer from the Hive's log, as if the views were always up to date.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import typing
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import psycopg_pool
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import BODY_LIMIT_FACTOR, create_app
from api.auth import MISS, KeyRing, Principal
from api.container import Container
from api.dashboard.session_book import SessionBook
from api.ports import ClaimedTask
from api.schemas.bots import BotListState
from api.settings import Settings
from domain.bots import Bot, BotState
from domain.cause import Cause
from domain.hive import Hive
from domain.keys import Role, format_token
from domain.policies.explanation import explain
from domain.policies.routing import Assignment
from domain.rounds import DispatchRound
from domain.tasks import Task, TaskState
from domain.unroutable import UnroutableTasks
from projections.process_stats import TimingsWindow
from projections.redrive_reads import RedriveFilter
from projections.rows import BOTS_ALL, BOTS_LIVE, BotFilter, BotRow, TaskFilter, TaskRow
from projections.stage_reads import MinuteCount, StageHistogram
from runtime.live import LiveIndex
from runtime.mailbox import Mailbox
from runtime.message_claims import MessageBoard
from runtime.postman import Postman
from runtime.retry_config import RetryConfig
from store.health import DatabaseGate
from store.history import entry_of
from tests.clock import FakeClock
from tests.unit.fake_key_reads import LogKeyReads
from tests.unit.fake_schedule_reads import LogScheduleReads
from tests.waiting import wait_for

ROOT = Cause("setup", "setup-1")
ENGINE = Cause.engine("dispatcher", "round-1")
PROBLEM = "application/problem+json"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
SECRET_MARKER = "s3cr3t-payload-marker"
_PLUS_TWO = timezone(timedelta(hours=2))


# -- fakes of the ports we own ----------------------------------------------------------


def log_of(hive: Hive) -> list[tuple[int, Any]]:
    notifications = hive.recorder.select_notifications(start=1, limit=1_000_000)
    return [(n.id, hive.mapper.to_domain_event(n)) for n in notifications]


class LogTaskReads:
    """The tasks view, folded from the log on every read."""

    def __init__(self, hive: Hive) -> None:
        self.hive = hive

    def rows(self) -> dict[UUID, TaskRow]:
        seq: dict[UUID, int] = {}
        position: dict[UUID, int] = {}
        times: defaultdict[UUID, dict[str, Any]] = defaultdict(dict)
        pending: set[UUID] = set()  # as of the event being folded
        rounds: dict[UUID, DispatchRound.Decided] = {}
        for pos, event in log_of(self.hive):
            task_id = event.originator_id
            if isinstance(event, DispatchRound.Decided):
                rounds[task_id] = event
                continue
            if isinstance(event, UnroutableTasks.Unroutable):
                flag = {
                    "reason": event.reason,
                    "missing": event.missing,
                    "at": event.timestamp.isoformat(),
                }
                for named in pending.intersection(event.task_ids):
                    times[named]["unroutable"] = flag
                    times[named].setdefault("flagged_at", []).append(pos)
                continue
            if isinstance(event, Task.Submitted | Task.LeaseExpired):
                pending.add(task_id)
            elif isinstance(event, Task.Event):
                pending.discard(task_id)
            if isinstance(event, Task.Submitted):
                seq[task_id] = pos
            if task_id not in seq:
                continue
            position[task_id] = pos
            if isinstance(event, Task.Assigned):
                why = event.why
                if event.round_id is not None:
                    made = rounds[event.round_id]
                    why = explain(made.policy, made.groups, why)
                times[task_id].update(assigned_at=event.timestamp, assignment=why, unroutable=None)
            elif isinstance(event, Task.Unroutable):
                times[task_id]["unroutable"] = {
                    "reason": event.reason,
                    "missing": event.missing,
                    "at": event.timestamp.isoformat(),
                }
            elif isinstance(event, Task.Started):
                times[task_id]["started_at"] = event.timestamp
            elif isinstance(event, Task.Succeeded | Task.Failed | Task.Cancelled):
                times[task_id]["finished_at"] = event.timestamp
        tasks = self.hive.load_many(Task, seq)
        return {
            i: TaskRow(
                task_id=i,
                type=t.type,
                priority=t.priority,
                capabilities=t.capabilities,
                state=str(t.state),
                payload=_loads(t.payload),
                result=_loads(t.result) if t.result is not None else None,
                error=t.error,
                bot_id=t.bot_id,
                fencing_token=t.fencing_token,
                idempotency_key=t.idempotency_key,
                submitted_by=t.submitted_by,
                submitted_at=t.created_on,
                assigned_at=times[i].get("assigned_at"),
                started_at=times[i].get("started_at"),
                finished_at=times[i].get("finished_at"),
                assignment=times[i].get("assignment"),
                unroutable=times[i].get("unroutable"),
                seq=seq[i],
                version=t.version,
                position=position[i],
                not_before=t.not_before,
                schedule_id=t.schedule_id,
                flagged_at=times[i].get("flagged_at", []),
                attempt=t.attempt,
                series=t.series,
                error_kind=t.error_kind,
                dead_reason=t.dead_reason,
                retry=t.retry,
            )
            for i, t in tasks.items()
        }

    def get(self, task_id: UUID) -> TaskRow | None:
        return self.rows().get(task_id)

    def list(
        self, flt: TaskFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[TaskRow], str | None]:
        after = 0
        if cursor is not None:
            if not cursor.startswith("s") or not cursor[1:].isdigit():
                raise ValueError("cursor is not one this server gave out")
            after = int(cursor[1:])
        rows = sorted(self.rows().values(), key=lambda r: r.seq)
        wanted = [
            r
            for r in rows
            if r.seq > after
            and (flt.state is None or r.state == flt.state)
            and (flt.type is None or r.type == flt.type)
            and (flt.bot_id is None or r.bot_id == flt.bot_id)
            and (flt.schedule_id is None or r.schedule_id == flt.schedule_id)
        ]
        page = wanted[:limit]
        return page, (f"s{page[-1].seq}" if len(wanted) > limit else None)


class LogRedriveFinder:
    """What a bulk re-drive finds, from the aggregates themselves (a finished task's last
    event is its finish)."""

    def __init__(self, hive: Hive) -> None:
        self.hive = hive

    def find(self, flt: RedriveFilter, limit: int) -> list[UUID]:
        ids = [e.originator_id for _, e in log_of(self.hive) if isinstance(e, Task.Submitted)]
        found = [
            t
            for t in self.hive.load_many(Task, ids).values()
            if str(t.state) in flt.states
            and flt.type in (None, t.type)
            and flt.error_kind in (None, t.error_kind)
            and (flt.finished_since is None or t.modified_on >= flt.finished_since)
            and (flt.finished_until is None or t.modified_on < flt.finished_until)
        ]
        return [t.id for t in sorted(found, key=lambda t: t.modified_on)][:limit]


class LogFleetReads:
    """The fleet view, from the log on every read: every bot heartbeats (a lease is the
    fleet view's business, read on PostgreSQL in the integration tests)."""

    def __init__(self, hive: Hive) -> None:
        self.hive = hive
        self.failure: Exception | None = None

    def rows(self) -> list[BotRow]:
        if self.failure is not None:
            raise self.failure
        registered = {
            e.originator_id: p for p, e in log_of(self.hive) if isinstance(e, Bot.Registered)
        }
        return [
            BotRow(
                bot_id=b.id,
                name=b.name,
                capabilities=b.capabilities,
                max_concurrency=b.max_concurrency,
                version_label=b.version_label,
                state=str(b.state),
                registered_at=b.created_on,
                lost_at=None,
                lost_reason=None,
                deregistered_at=None,
                pool=b.pool,
                launch_id=b.launch_id,
                takes_messages=b.takes_messages,
                state_reason=None,
                held=0,
                version=b.version,
                position=registered[b.id],
            )
            for b in self.hive.load_many(Bot, registered).values()
        ]

    def list(
        self, flt: BotFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[BotRow], str | None]:
        after = int(cursor) if cursor is not None and cursor.isdigit() else 0
        if cursor is not None and not cursor.isdigit():
            raise ValueError("cursor is not one this server gave out")
        wanted = [
            r
            for r in sorted(self.rows(), key=lambda r: r.position)
            if r.position > after
            and (
                flt.state == "all"
                or r.state == flt.state
                or (flt.state == "live" and BotState(r.state).is_live)
            )
            and (flt.capability is None or flt.capability in r.capabilities)
            and (flt.pool is None or r.pool == flt.pool)
            and (flt.name is None or r.name == flt.name)
        ]
        page = wanted[:limit]
        return page, (str(page[-1].position) if len(wanted) > limit else None)

    def get(self, bot_id: UUID) -> BotRow | None:
        return next((r for r in self.rows() if r.bot_id == bot_id), None)


class ImmediatePositions:
    """Views that are always up to date: every position already in the log is applied."""

    def __init__(self, hive: Hive) -> None:
        self.hive = hive
        self.waited: list[tuple[int, float]] = []

    def wait(self, position: int, timeout: float) -> bool:
        self.waited.append((position, timeout))
        return position <= (self.hive.recorder.max_notification_id() or 0)


class LogClaimBoard:
    """Claims answered from the log at once: the assigned, unstarted tasks of the bot."""

    def __init__(self, hive: Hive) -> None:
        self.hive = hive
        self.calls: list[tuple[UUID, int, float]] = []

    async def claim(self, bot_id: UUID, max_tasks: int, wait_s: float) -> list[ClaimedTask]:
        self.calls.append((bot_id, max_tasks, wait_s))
        rows = LogTaskReads(self.hive).list(
            TaskFilter(state=str(TaskState.ASSIGNED), bot_id=bot_id), limit=max_tasks, cursor=None
        )[0]
        tasks = self.hive.load_many(Task, [r.task_id for r in rows])
        return [
            ClaimedTask(t.id, t.type, t.priority, t.capabilities, t.payload, t.fencing_token)
            for t in tasks.values()
        ]


@dataclass
class MemoryLiveness:
    leases: dict[UUID, datetime] = field(default_factory=dict)

    def renew(self, bot_id: UUID, ttl_s: float, config_version: int | None = None) -> datetime:
        self.leases[bot_id] = NOW + timedelta(seconds=ttl_s)
        return self.leases[bot_id]

    def forget(self, bot_id: UUID) -> None:
        self.leases.pop(bot_id, None)


@dataclass
class SetReadiness:
    checks: dict[str, str] = field(default_factory=lambda: {"database": "ok", "views": "ok"})
    failure: Exception | None = None

    def check(self) -> dict[str, str]:
        if self.failure is not None:
            raise self.failure
        return dict(self.checks)


def _loads(text: str) -> Any:
    import orjson

    return orjson.loads(text)


# -- fixtures ---------------------------------------------------------------------------


@dataclass
class World:
    hive: Hive
    container: Container
    client: TestClient
    clock: FakeClock
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def persisted(self) -> int:
        return self.hive.recorder.max_notification_id() or 0


def make_settings() -> Settings:
    return Settings(max_payload_bytes=1024, max_batch=3, claim_max_wait_s=2.0, retry_after_s=7)


def make_container(
    hive: Hive,
    settings: Settings,
    keys: KeyRing,
    probe: Callable[[], None] | None = None,
    settings_now: Callable[[], Settings] | None = None,
) -> Container:
    """The container over ``hive``: ``settings`` throughout, unless ``settings_now`` gives
    the settings in force per request (the config tests' live ones)."""
    mailbox, index = Mailbox(), LiveIndex()
    hive.listeners += [mailbox.apply, index.apply]
    return Container(
        settings_now=settings_now or (lambda: settings),
        hive=hive,
        tasks=LogTaskReads(hive),
        fleet=LogFleetReads(hive),
        schedules=LogScheduleReads(hive),
        positions=ImmediatePositions(hive),
        schedule_positions=ImmediatePositions(hive),
        claims=LogClaimBoard(hive),
        liveness=MemoryLiveness(),
        presence=index,
        processes=NoProcesses(),
        readiness=SetReadiness(),
        keys=keys,
        gate=DatabaseGate(probe or (lambda: None), probe_interval=0.01),
        scaling=UnscaledPools(),
        stages=NoStages(),
        metrics=NoMetrics(),
        messages=MessageBoard(hive, mailbox, settings.message_visibility_s),
        postman=Postman(hive, index, mailbox),
        message_reads=NoConversations(),
        key_reads=LogKeyReads(hive),
        history=LogHistory(hive),
        redrive=LogRedriveFinder(hive),
        process_stats=NoTimings(),
    )


class NoProcesses:
    """The processes table is read in the integration tests; here none reports."""

    def live(self) -> list[Any]:
        return []


class NoTimings:
    """The processes' minutes are read in the integration tests; here none has any."""

    def window(self, seconds: float) -> TimingsWindow:
        return TimingsWindow(seconds, [], {}, {})


class NoConversations:
    """The messages view is read in the integration tests; here no conversation is listed."""

    def conversation(
        self, name: str, *, limit: int, cursor: str | None, bot: UUID | None = None
    ) -> tuple[list[Any], None]:
        return [], None

    def latest(
        self, *, limit: int, cursor: str | None, bot: UUID | None = None
    ) -> tuple[list[Any], None]:
        return [], None

    def by_state(self) -> dict[str, int]:
        return {}

    def dead_letters(self, limit: int) -> list[Any]:
        return []


class UnscaledPools:
    """No pool has been sized yet and none has launched anything."""

    def pools(self, names: list[str]) -> dict[str, dict[str, Any]]:
        empty = {"desired": 0, "reason": None, "inputs": None, "resized_at": None, "bots": {}}
        return {n: dict(empty) for n in names}

    def launches(self, pool: str, limit: int) -> list[dict[str, Any]]:
        return []


class LogHistory:
    """Aggregates' histories, read from the log as ``store.history.History`` reads them."""

    def __init__(self, hive: Hive) -> None:
        self.hive = hive

    def events(self, aggregate_id: UUID, up_to_version: int) -> list[Any]:
        return [
            e
            for _, e in log_of(self.hive)
            if e.originator_id == aggregate_id and e.originator_version <= up_to_version
        ]

    def of(self, aggregate_id: UUID, limit: int = 1000) -> list[Any]:
        return [entry_of(p, e, "") for p, e in log_of(self.hive) if e.originator_id == aggregate_id]

    def at(self, positions: list[int]) -> list[Any]:
        return [entry_of(p, e, "") for p, e in log_of(self.hive) if p in positions]

    def made(self, aggregate_ids: list[UUID]) -> dict[UUID, Any]:
        return {
            e.originator_id: e
            for _, e in log_of(self.hive)
            if e.originator_id in aggregate_ids and e.originator_version == 1
        }


class NoStages:
    """No task has ended a stage yet (the stages view is tested on PostgreSQL)."""

    def histograms(self) -> list[StageHistogram]:
        return []

    def minutes(self, last: int, now: datetime) -> list[MinuteCount]:
        return []


class NoMetrics:
    """An empty scrape (the collector is tested on PostgreSQL)."""

    content_type = "text/plain; version=1.0.0; charset=utf-8"

    def render(self) -> bytes:
        return b""


def issue_tokens(hive: Hive) -> dict[str, str]:
    return {
        "admin": hive.keys.issue("root", Role.ADMIN, ROOT).token,
        "client": hive.keys.issue("alice", Role.CLIENT, ROOT).token,
        "enrol": hive.keys.issue("enrolment", Role.BOT, ROOT).token,
    }


@contextmanager
def world_of(hive: Hive, settings_now: Callable[[], Settings] | None = None) -> Iterator[World]:
    """The app over ``hive``, with the test settings (``make_settings``) or the settings in
    force that ``settings_now`` gives, and a key per role."""
    clock = FakeClock()
    keys = KeyRing(hive, ttl_s=5.0, clock=clock.monotonic)
    hive.tasks.policies = RetryConfig().policies()  # the default config's, as a node's
    container = make_container(hive, make_settings(), keys, settings_now=settings_now)
    container.sessions = SessionBook(hive, clock=clock.monotonic)
    tokens = issue_tokens(hive)
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield World(hive, container, client, clock, tokens)


@pytest.fixture
def world() -> Iterator[World]:
    with world_of(Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})) as w:
        yield w


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://apiary.dev/problems/{slug}"
    assert body["status"] == status
    assert body["title"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def submit(world: World, **task: Any) -> dict[str, Any]:
    response = world.client.post("/v1/tasks", json=task, headers=world.auth("client"))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def register(world: World, name: str = "b1", caps: list[str] | None = None) -> tuple[str, str]:
    response = world.client.post(
        "/v1/bots",
        json={"name": name, "capabilities": caps or ["code"], "max_concurrency": 4, "version": "1"},
        headers=world.auth("enrol"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    world.tokens[name] = body["token"]
    return body["bot_id"], body["token"]


def assign(world: World, task_id: str, bot_id: str) -> None:
    world.hive.tasks.assign([Assignment(UUID(task_id), UUID(bot_id), {"policy": "test"})], ENGINE)


# -- tasks ------------------------------------------------------------------------------


def test_submit_returns_201_with_location_and_get_waits_for_the_position(world: World) -> None:
    response = world.client.post(
        "/v1/tasks",
        json={"type": "code", "priority": 7, "payload": {"b": [1, 2], "a": "x"}},
        headers=world.auth("client"),
    )
    assert response.status_code == 201
    created = response.json()
    assert response.headers["Location"] == f"/v1/tasks/{created['id']}"
    assert created["state"] == "pending"
    assert created["capabilities"] == ["code"]
    assert created["payload"] == {"a": "x", "b": [1, 2]}
    assert created["submitted_by"] == "alice"
    assert created["position"] == world.persisted()

    got = world.client.get(
        f"/v1/tasks/{created['id']}?min_position={created['position']}",
        headers=world.auth("client"),
    )
    assert got.status_code == 200
    assert got.json()["id"] == created["id"]
    assert got.json()["priority"] == 7
    assert world.container.positions.waited == [(created["position"], 5.0)]  # type: ignore[attr-defined]


def test_payload_is_stored_as_canonical_json_text(world: World) -> None:
    created = submit(world, type="code", payload={"z": 1, "a": {"y": None, "b": True}})
    stored = world.hive.get(Task, UUID(created["id"]))
    assert stored.payload == '{"a":{"b":true,"y":null},"z":1}'


def test_repeated_idempotency_key_gives_201_then_200_with_the_original(world: World) -> None:
    first = world.client.post(
        "/v1/tasks",
        json={"type": "code", "idempotency_key": "k-1", "payload": {"n": 1}},
        headers=world.auth("client"),
    )
    after_first = world.persisted()
    again = world.client.post(
        "/v1/tasks",
        json={"type": "code", "idempotency_key": "k-1", "payload": {"n": 2}},
        headers=world.auth("client"),
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["payload"] == {"n": 1}
    assert world.persisted() == after_first
    assert again.json()["position"] >= first.json()["position"]


def test_batch_submit_marks_duplicates_and_returns_the_position(world: World) -> None:
    response = world.client.post(
        "/v1/tasks/batch",
        json={
            "tasks": [
                {"type": "code", "idempotency_key": "same"},
                {"type": "analysis", "priority": 0},
                {"type": "code", "idempotency_key": "same"},
            ]
        },
        headers=world.auth("client"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert [i["duplicate"] for i in body["items"]] == [False, False, True]
    assert body["items"][0]["task"]["id"] == body["items"][2]["task"]["id"]
    assert body["position"] == world.persisted()


def test_list_filters_and_pages_oldest_first(world: World) -> None:
    ids = [submit(world, type="code")["id"] for _ in range(3)]
    submit(world, type="writing")
    page1 = world.client.get("/v1/tasks?type=code&limit=2", headers=world.auth("client"))
    assert page1.status_code == 200, page1.text
    assert [t["id"] for t in page1.json()["items"]] == ids[:2]
    cursor = page1.json()["next_cursor"]
    page2 = world.client.get(
        "/v1/tasks",
        params={"type": "code", "limit": 2, "cursor": cursor},
        headers=world.auth("client"),
    )
    assert [t["id"] for t in page2.json()["items"]] == ids[2:]
    assert page2.json()["next_cursor"] is None


def test_a_delayed_task_shows_when_it_is_due_in_utc(world: World) -> None:
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    created = submit(world, type="code", not_before=due.astimezone(_PLUS_TWO).isoformat())
    assert datetime.fromisoformat(created["not_before"]) == due
    got = world.client.get(f"/v1/tasks/{created['id']}", headers=world.auth("client"))
    assert datetime.fromisoformat(got.json()["not_before"]) == due
    assert got.json()["schedule_id"] is None


def test_a_delay_over_366_days_is_422(world: World) -> None:
    before = world.persisted()
    too_far = datetime.now(UTC) + timedelta(days=367)
    response = world.client.post(
        "/v1/tasks",
        json={"type": "code", "not_before": too_far.isoformat()},
        headers=world.auth("client"),
    )
    assert "366 days" in assert_problem(response, 422, "invalid-input")["detail"]
    assert world.persisted() == before


def test_cancel_then_cancel_again_is_409(world: World) -> None:
    task = submit(world, type="code")
    cancelled = world.client.post(
        f"/v1/tasks/{task['id']}/cancel",
        json={"reason": "changed my mind"},
        headers=world.auth("client"),
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    before = world.persisted()
    again = world.client.post(
        f"/v1/tasks/{task['id']}/cancel", json={"reason": "again"}, headers=world.auth("client")
    )
    assert_problem(again, 409, "invalid-transition")
    assert world.persisted() == before


# -- authentication and roles -----------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Basic YWxpY2U6cGFzcw==",
        "Bearer not-a-token",
        f"Bearer apk_{uuid4().hex}_unknownsecret",
    ],
)
def test_missing_or_garbage_key_is_401(world: World, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    before = world.persisted()
    response = world.client.post("/v1/tasks", json={"type": "code"}, headers=headers)
    body = assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert world.persisted() == before
    credential = (authorization or "").partition(" ")[2]
    if credential:
        assert credential not in str(body)


def test_right_key_id_with_a_wrong_secret_is_401(world: World) -> None:
    forged = world.tokens["client"].rsplit("_", 1)[0] + "_wrongsecret"
    response = world.client.get("/v1/bots", headers={"Authorization": f"Bearer {forged}"})
    assert_problem(response, 401, "unauthorized")


def test_revoked_key_is_refused_once_the_cache_expires(world: World) -> None:
    token = world.hive.keys.issue("bob", Role.CLIENT, ROOT).token
    headers = {"Authorization": f"Bearer {token}"}
    assert world.client.get("/v1/bots", headers=headers).status_code == 200
    key_id = UUID(token.split("_")[1])
    world.hive.keys.revoke(key_id, ROOT)
    assert world.client.get("/v1/bots", headers=headers).status_code == 200  # cached, within ttl
    world.clock.advance(5.01)
    assert_problem(world.client.get("/v1/bots", headers=headers), 401, "unauthorized")


@pytest.mark.parametrize(
    ("who", "method", "path", "body"),
    [
        ("enrol", "POST", "/v1/tasks", {"type": "code"}),
        ("enrol", "GET", "/v1/bots", None),
        (
            "client",
            "POST",
            "/v1/bots",
            {"name": "b", "capabilities": ["x"], "max_concurrency": 1, "version": "1"},
        ),
    ],
)
def test_wrong_role_is_403(world: World, who: str, method: str, path: str, body: Any) -> None:
    before = world.persisted()
    response = world.client.request(method, path, json=body, headers=world.auth(who))
    assert_problem(response, 403, "forbidden")
    assert world.persisted() == before


def test_a_bot_key_acts_for_its_own_bot_only(world: World) -> None:
    bot_a, _ = register(world, "bot-a")
    bot_b, _ = register(world, "bot-b")
    before = world.persisted()
    for path in ("heartbeat", "claim", "start"):
        body = {"tasks": [{"task_id": str(uuid4()), "fencing_token": 1}]} if path == "start" else {}
        response = world.client.post(
            f"/v1/bots/{bot_b}/{path}", json=body, headers=world.auth("bot-a")
        )
        assert_problem(response, 403, "forbidden")
    assert_problem(
        world.client.delete(f"/v1/bots/{bot_b}", headers=world.auth("bot-a")), 403, "forbidden"
    )
    # its own key may not register more bots, nor act as a client
    assert_problem(
        world.client.post(
            "/v1/bots",
            json={"name": "c", "capabilities": ["x"], "max_concurrency": 1, "version": "1"},
            headers=world.auth("bot-a"),
        ),
        403,
        "forbidden",
    )
    assert_problem(world.client.get("/v1/tasks", headers=world.auth("bot-a")), 403, "forbidden")
    # an admin may deregister any bot, but not heartbeat or report as one
    assert_problem(
        world.client.post(f"/v1/bots/{bot_a}/heartbeat", json={}, headers=world.auth("admin")),
        403,
        "forbidden",
    )
    assert world.persisted() == before
    assert world.client.delete(f"/v1/bots/{bot_a}", headers=world.auth("admin")).status_code == 200


def test_admin_may_do_what_a_client_may(world: World) -> None:
    response = world.client.post("/v1/tasks", json={"type": "code"}, headers=world.auth("admin"))
    assert response.status_code == 201
    assert response.json()["submitted_by"] == "root"


def test_auth_is_checked_before_the_body_is_validated(world: World) -> None:
    response = world.client.post("/v1/tasks", json={"type": "code", "priority": 99})
    assert_problem(response, 401, "unauthorized")


# -- not found --------------------------------------------------------------------------


def test_unknown_task_bot_and_route_are_404(world: World) -> None:
    assert_problem(
        world.client.get(f"/v1/tasks/{uuid4()}", headers=world.auth("client")), 404, "not-found"
    )
    assert_problem(
        world.client.post(
            f"/v1/tasks/{uuid4()}/cancel", json={"reason": "x"}, headers=world.auth("client")
        ),
        404,
        "not-found",
    )
    assert_problem(
        world.client.delete(f"/v1/bots/{uuid4()}", headers=world.auth("admin")), 404, "not-found"
    )
    assert_problem(world.client.get("/v1/nothing-here"), 404, "not-found")


def test_wrong_method_is_405_problem(world: World) -> None:
    response = world.client.put("/v1/tasks", headers=world.auth("client"))
    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]


# -- bots: the whole life, and 409s -----------------------------------------------------


def test_bot_registers_claims_starts_and_completes(world: World) -> None:
    liveness: MemoryLiveness = world.container.liveness  # type: ignore[assignment]
    response = world.client.post(
        "/v1/bots",
        json={"name": "worker", "capabilities": ["code"], "max_concurrency": 2, "version": "v9"},
        headers=world.auth("enrol"),
    )
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    registered = response.json()
    bot_id = registered["bot_id"]
    world.tokens["worker"] = registered["token"]
    assert registered["lease_ttl_s"] == world.container.settings.bot_lease_ttl_s
    assert registered["heartbeat_interval_s"] == world.container.settings.heartbeat_interval_s
    assert UUID(bot_id) in liveness.leases

    beat = world.client.post(f"/v1/bots/{bot_id}/heartbeat", json={}, headers=world.auth("worker"))
    assert beat.status_code == 200
    bare = world.client.post(f"/v1/bots/{bot_id}/heartbeat", headers=world.auth("worker"))
    assert bare.status_code == 200  # the empty body may be left out
    assert datetime.fromisoformat(beat.json()["lease_expires_at"]) == liveness.leases[UUID(bot_id)]

    task = submit(world, type="code", payload={"q": 1})
    assign(world, task["id"], bot_id)
    claimed = world.client.post(
        f"/v1/bots/{bot_id}/claim",
        json={"max_tasks": 5, "wait_s": 30},
        headers=world.auth("worker"),
    )
    assert claimed.status_code == 200, claimed.text
    [item] = claimed.json()["tasks"]
    assert item == {
        "id": task["id"],
        "type": "code",
        "priority": 5,
        "capabilities": ["code"],
        "payload": {"q": 1},
        "fencing_token": 1,
    }
    board: LogClaimBoard = world.container.claims  # type: ignore[assignment]
    assert board.calls == [(UUID(bot_id), 5, 2.0)]  # wait capped at APIARY_CLAIM_MAX_WAIT_S

    report = {"tasks": [{"task_id": task["id"], "fencing_token": 1}]}
    started = world.client.post(
        f"/v1/bots/{bot_id}/start", json=report, headers=world.auth("worker")
    )
    assert started.status_code == 200, started.text
    assert started.json()["tasks"] == [task["id"]]
    done = world.client.post(
        f"/v1/bots/{bot_id}/complete",
        json={"tasks": [{"task_id": task["id"], "fencing_token": 1, "result": {"answer": 42}}]},
        headers=world.auth("worker"),
    )
    assert done.status_code == 200, done.text
    got = world.client.get(
        f"/v1/tasks/{task['id']}?min_position={done.json()['position']}",
        headers=world.auth("client"),
    )
    assert got.json()["state"] == "succeeded"
    assert got.json()["result"] == {"answer": 42}
    assert got.json()["started_at"] is not None and got.json()["finished_at"] is not None


def started(world: World, bot_id: str, task: dict[str, Any]) -> dict[str, Any]:
    """``task`` assigned to ``bot_id`` and reported started; its report's reference."""
    assign(world, task["id"], bot_id)
    ref = {
        "task_id": task["id"],
        "fencing_token": world.hive.get(Task, UUID(task["id"])).fencing_token,
    }
    answer = world.client.post(
        f"/v1/bots/{bot_id}/start", json={"tasks": [ref]}, headers=world.auth("b1")
    )
    assert answer.status_code == 200, answer.text
    return ref


def fail(world: World, bot_id: str, *items: dict[str, Any]) -> httpx.Response:
    return world.client.post(
        f"/v1/bots/{bot_id}/fail", json={"tasks": list(items)}, headers=world.auth("b1")
    )


def test_a_failure_with_the_default_policy_is_retried_after_its_backoff(world: World) -> None:
    bot_id, _ = register(world)
    task = submit(world, type="code")
    ref = started(world, bot_id, task)
    failed = fail(world, bot_id, {**ref, "error": "boom", "error_kind": "flaky"})
    assert failed.status_code == 200, failed.text
    stored = world.hive.get(Task, UUID(task["id"]))
    assert (stored.state, stored.error, stored.error_kind) == (TaskState.PENDING, "boom", "flaky")
    assert stored.attempt == 2 and stored.not_before is not None
    [scheduled] = [e for _, e in log_of(world.hive) if isinstance(e, Task.RetryScheduled)]
    assert (scheduled.attempt, scheduled.outcome, scheduled.bot_id) == (1, "failed", UUID(bot_id))
    assert scheduled.delay_s >= 1.0  # the default policy's first backoff, jitter only adds


def test_a_failure_said_not_retryable_fails_the_task_for_good(world: World) -> None:
    bot_id, _ = register(world)
    task = submit(world, type="code")
    ref = started(world, bot_id, task)
    failed = fail(
        world,
        bot_id,
        {**ref, "error": "no such file", "error_kind": "bad-input", "retryable": False},
    )
    assert failed.status_code == 200, failed.text
    stored = world.hive.get(Task, UUID(task["id"]))
    assert (stored.state, stored.error, stored.error_kind) == (
        TaskState.FAILED,
        "no such file",
        "bad-input",
    )


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"error_kind": "Not A Name"}, ["body", "tasks", 0, "error_kind"]),
        ({"error_kind": "x" * 65}, ["body", "tasks", 0, "error_kind"]),
        ({"retryable": "no"}, ["body", "tasks", 0, "retryable"]),
        ({"retryable": 0}, ["body", "tasks", 0, "retryable"]),
    ],
)
def test_a_bad_error_kind_or_retryable_flag_is_422(
    world: World, extra: dict[str, Any], loc: list[Any]
) -> None:
    bot_id, _ = register(world)
    ref = started(world, bot_id, submit(world, type="code"))
    before = world.persisted()
    body = assert_problem(
        fail(world, bot_id, {**ref, "error": "x", **extra}), 422, "validation-failed"
    )
    assert [e["loc"] for e in body["errors"]] == [loc]
    assert world.persisted() == before


def test_batch_report_with_a_stale_token_is_409_listing_it_and_applies_nothing(
    world: World,
) -> None:
    bot_id, _ = register(world)
    good, stale = submit(world, type="code"), submit(world, type="code")
    assign(world, good["id"], bot_id)
    assign(world, stale["id"], bot_id)
    before = world.persisted()
    response = world.client.post(
        f"/v1/bots/{bot_id}/start",
        json={
            "tasks": [
                {"task_id": good["id"], "fencing_token": 1},
                {"task_id": stale["id"], "fencing_token": 0},
            ]
        },
        headers=world.auth("b1"),
    )
    body = assert_problem(response, 409, "stale-fencing-token")
    assert body["items"] == [{"task_id": stale["id"], "reason": "stale-fencing-token"}]
    assert world.persisted() == before
    assert world.hive.get(Task, UUID(good["id"])).state is TaskState.ASSIGNED


def test_report_for_a_task_held_by_another_bot_is_409(world: World) -> None:
    mine, _ = register(world, "mine")
    theirs, _ = register(world, "theirs")
    task = submit(world, type="code")
    assign(world, task["id"], theirs)
    response = world.client.post(
        f"/v1/bots/{mine}/complete",
        json={"tasks": [{"task_id": task["id"], "fencing_token": 1, "result": 1}]},
        headers=world.auth("mine"),
    )
    body = assert_problem(response, 409, "not-your-task")
    assert body["items"] == [{"task_id": task["id"], "reason": "not-your-task"}]


def test_deregistered_bot_heartbeat_is_409(world: World) -> None:
    bot_id, _ = register(world)
    liveness: MemoryLiveness = world.container.liveness  # type: ignore[assignment]
    gone = world.client.delete(f"/v1/bots/{bot_id}", headers=world.auth("b1"))
    assert gone.status_code == 200
    assert gone.json()["state"] == "deregistered"
    assert UUID(bot_id) not in liveness.leases
    assert_problem(
        world.client.post(f"/v1/bots/{bot_id}/heartbeat", json={}, headers=world.auth("b1")),
        409,
        "bot-not-live",
    )


def test_fleet_lists_registered_bots(world: World) -> None:
    bot_id, _ = register(world, "lister", ["code", "analysis"])
    response = world.client.get("/v1/bots", headers=world.auth("client"))
    assert response.status_code == 200
    [bot] = response.json()["items"]
    assert (bot["id"], bot["name"], bot["capabilities"]) == (bot_id, "lister", ["analysis", "code"])
    assert bot["version"] == "1" and bot["state"] == "ready"


def test_the_bots_list_takes_the_domains_states_and_live_and_all() -> None:
    taken = set(typing.get_args(BotListState))
    assert taken == {str(s) for s in BotState} | {BOTS_LIVE, BOTS_ALL}


# -- validation, sizes, malformed bodies ------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/tasks", {"type": "code", "colour": "red"}, ["body", "colour"]),
        ("/v1/tasks", {"type": "code", "priority": 10}, ["body", "priority"]),
        ("/v1/tasks", {"type": "code", "priority": -1}, ["body", "priority"]),
        ("/v1/tasks", {"type": "code", "priority": "5"}, ["body", "priority"]),
        ("/v1/tasks", {"type": "code", "priority": True}, ["body", "priority"]),
        ("/v1/tasks", {"type": "code", "priority": 5.0}, ["body", "priority"]),
        ("/v1/tasks", {"type": "Code!"}, ["body", "type"]),
        ("/v1/tasks", {"type": "code", "capabilities": ["UPPER"]}, ["body", "capabilities", 0]),
        ("/v1/tasks", {"type": "code", "capabilities": []}, ["body", "capabilities"]),
        ("/v1/tasks", {"type": "code", "idempotency_key": ""}, ["body", "idempotency_key"]),
        ("/v1/tasks", {"priority": 1}, ["body", "type"]),
        (
            "/v1/tasks",
            {"type": "code", "not_before": "2030-01-01T09:00:00"},
            ["body", "not_before"],
        ),
        ("/v1/tasks", {"type": "code", "not_before": 1900000000}, ["body", "not_before"]),
        ("/v1/tasks/batch", {"tasks": []}, ["body", "tasks"]),
        ("/v1/tasks/batch", {"tasks": [{"type": "code"}] * 4}, ["body", "tasks"]),
        (
            "/v1/tasks/batch",
            {"tasks": [{"type": "code"}, {"type": "code", "priority": 10}]},
            ["body", "tasks", 1, "priority"],
        ),
    ],
)
def test_invalid_submissions_are_422_and_persist_nothing(
    world: World, path: str, body: Any, loc: list[Any]
) -> None:
    before = world.persisted()
    response = world.client.post(path, json=body, headers=world.auth("client"))
    problem = assert_problem(response, 422, "validation-failed")
    assert loc in [e["loc"] for e in problem["errors"]]
    assert all(set(e) == {"loc", "msg", "type"} for e in problem["errors"])
    assert world.persisted() == before


def test_validation_errors_do_not_echo_the_payload(world: World) -> None:
    response = world.client.post(
        "/v1/tasks",
        json={"type": "code", "payload": {"x": SECRET_MARKER}, "unknown": SECRET_MARKER},
        headers=world.auth("client"),
    )
    assert_problem(response, 422, "validation-failed")
    assert SECRET_MARKER not in response.text


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/tasks", "state=exploded"),
        ("/v1/tasks", "limit=0"),
        ("/v1/tasks", "limit=501"),
        ("/v1/tasks", "cursor=not-a-cursor"),
        ("/v1/tasks", "colour=red"),
        (f"/v1/tasks/{uuid4()}", "min_position=-1"),
        ("/v1/tasks/not-a-uuid", ""),
    ],
)
def test_invalid_queries_are_422(world: World, path: str, query: str) -> None:
    response = world.client.get(f"{path}?{query}", headers=world.auth("client"))
    assert_problem(response, 422, "validation-failed")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("claim", {"max_tasks": 0}),
        ("claim", {"max_tasks": 1, "wait_s": 31}),
        ("claim", {"max_tasks": 1, "wait_s": True}),
        ("heartbeat", {"extra": 1}),
        ("start", {"tasks": [{"task_id": "nope", "fencing_token": 1}]}),
        ("start", {"tasks": [{"task_id": str(uuid4()), "fencing_token": "1"}]}),
        ("fail", {"tasks": [{"task_id": str(uuid4()), "fencing_token": 1, "error": "x" * 4097}]}),
        ("complete", {"tasks": [{"task_id": str(uuid4()), "fencing_token": 1}] * 4}),
    ],
)
def test_invalid_bot_requests_are_422(world: World, path: str, body: Any) -> None:
    bot_id, _ = register(world)
    before = world.persisted()
    response = world.client.post(f"/v1/bots/{bot_id}/{path}", json=body, headers=world.auth("b1"))
    assert_problem(response, 422, "validation-failed")
    assert world.persisted() == before


def test_malformed_json_is_400(world: World) -> None:
    before = world.persisted()
    response = world.client.post(
        "/v1/tasks",
        content=b'{"type": "code", ',
        headers={**world.auth("client"), "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "malformed-json")
    assert world.persisted() == before


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (b'{"type": "code", "payload": {"x": NaN}}', ["body", "payload", "dict", "x", "float"]),
        (b'{"type": "code", "payload": 123456789012345678901234567890}', ["body", "payload"]),
    ],
)
def test_json_the_log_cannot_hold_is_422(world: World, raw: bytes, loc: list[Any]) -> None:
    before = world.persisted()
    response = world.client.post(
        "/v1/tasks",
        content=raw,
        headers={**world.auth("client"), "Content-Type": "application/json"},
    )
    assert loc in [e["loc"] for e in assert_problem(response, 422, "validation-failed")["errors"]]
    assert world.persisted() == before


def test_payload_over_the_limit_is_413(world: World) -> None:
    limit = world.container.settings.max_payload_bytes
    before = world.persisted()
    response = world.client.post(
        "/v1/tasks", json={"type": "code", "payload": "x" * limit}, headers=world.auth("client")
    )
    assert_problem(response, 413, "payload-too-large")
    batch = world.client.post(
        "/v1/tasks/batch",
        json={"tasks": [{"type": "code"}, {"type": "code", "payload": ["y" * limit]}]},
        headers=world.auth("client"),
    )
    assert assert_problem(batch, 413, "payload-too-large")["items"] == [
        {"index": 1, "reason": "payload-too-large"}
    ]
    assert world.persisted() == before
    fits = world.client.post(
        "/v1/tasks",
        json={"type": "code", "payload": "x" * (limit - 2)},
        headers=world.auth("client"),
    )
    assert fits.status_code == 201  # the quoted string is exactly the limit


def test_result_over_the_limit_is_413(world: World) -> None:
    bot_id, _ = register(world)
    task = submit(world, type="code")
    assign(world, task["id"], bot_id)
    ref = {"task_id": task["id"], "fencing_token": 1}
    world.client.post(f"/v1/bots/{bot_id}/start", json={"tasks": [ref]}, headers=world.auth("b1"))
    before = world.persisted()
    response = world.client.post(
        f"/v1/bots/{bot_id}/complete",
        json={"tasks": [{**ref, "result": "r" * 2000}]},
        headers=world.auth("b1"),
    )
    assert assert_problem(response, 413, "payload-too-large")["items"] == [
        {"index": 0, "reason": "payload-too-large"}
    ]
    assert world.persisted() == before


def test_body_over_the_limit_is_413_by_length_and_while_streaming(world: World) -> None:
    too_big = world.container.settings.max_payload_bytes * BODY_LIMIT_FACTOR + 1
    body = b'{"type": "code"' + b" " * too_big + b"}"  # valid JSON, a tiny payload: 201 if let in
    headers = {**world.auth("client"), "Content-Type": "application/json"}
    before = world.persisted()
    declared = world.client.post("/v1/tasks", content=body, headers=headers)
    assert_problem(declared, 413, "payload-too-large")
    # refused on the declared length alone, before a byte of the body is read
    claimed = world.client.post(
        "/v1/tasks",
        content=b'{"type": "code"}',
        headers={**headers, "Content-Length": str(too_big)},
    )
    assert_problem(claimed, 413, "payload-too-large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    streamed = world.client.post("/v1/tasks", content=chunks(), headers=headers)
    assert "content-length" not in streamed.request.headers
    assert_problem(streamed, 413, "payload-too-large")
    assert world.persisted() == before


# -- request ids, problems, logs --------------------------------------------------------


def test_request_id_is_echoed_and_recorded_on_the_events(world: World) -> None:
    response = world.client.post(
        "/v1/tasks",
        json={"type": "code"},
        headers={**world.auth("client"), "X-Request-ID": "trace:42.a-b"},
    )
    assert response.headers["X-Request-ID"] == "trace:42.a-b"
    [(_, event)] = [(p, e) for p, e in log_of(world.hive) if isinstance(e, Task.Submitted)]
    assert (event.actor, event.request_id) == ("alice", "trace:42.a-b")


def test_bot_reports_are_stamped_with_the_bot_as_actor(world: World) -> None:
    bot_id, _ = register(world)
    task = submit(world, type="code")
    assign(world, task["id"], bot_id)
    world.client.post(
        f"/v1/bots/{bot_id}/start",
        json={"tasks": [{"task_id": task["id"], "fencing_token": 1}]},
        headers={**world.auth("b1"), "X-Request-ID": "start-1"},
    )
    [event] = [e for _, e in log_of(world.hive) if isinstance(e, Task.Started)]
    assert (event.actor, event.request_id) == (f"bot:{bot_id}", "start-1")


@pytest.mark.parametrize("given", ["", "has space", "x" * 65, "semi;colon"])
def test_a_malformed_request_id_is_replaced(world: World, given: str) -> None:
    response = world.client.get("/healthz", headers={"X-Request-ID": given})
    echoed = response.headers["X-Request-ID"]
    assert echoed != given
    assert len(echoed) == 32 and int(echoed, 16) >= 0


def test_logs_never_hold_the_payload_or_the_token(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = world.tokens["client"]
    world.client.post(
        "/v1/tasks",
        json={"type": "code", "payload": {"secret": SECRET_MARKER}},
        headers={**world.auth("client"), "X-Request-ID": "log-test-1"},
    )
    world.client.post(
        "/v1/tasks",
        json={"type": "code", "priority": SECRET_MARKER, "payload": SECRET_MARKER},
        headers=world.auth("client"),
    )
    access = [r for r in caplog.records if getattr(r, "action", None) == "http_request"]
    assert len(access) == 2
    first = access[0]
    assert (first.method, first.route, first.status) == ("POST", "/v1/tasks", 201)  # type: ignore[attr-defined]
    assert (first.request_id, first.principal) == ("log-test-1", "alice")  # type: ignore[attr-defined]
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__} {record.exc_text or ''}"
        assert SECRET_MARKER not in text
        assert token not in text and token.split("_", 2)[2] not in text  # the secret


def test_a_bots_routine_requests_log_at_debug_and_its_failures_at_info(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by outside testing: heartbeats and claims were 1,488 of 3,608 INFO lines in
    five minutes. What a bot does all day logs at DEBUG while it goes well."""
    caplog.set_level(logging.DEBUG)
    bot_id, token = register(world)
    bot = {"Authorization": f"Bearer {token}"}
    world.client.post(f"/v1/bots/{bot_id}/heartbeat", json={}, headers=bot)
    world.client.post(f"/v1/bots/{bot_id}/claim", json={"max_tasks": 1, "wait_s": 0}, headers=bot)
    world.client.post(f"/v1/bots/{bot_id}/claim", json={"max_tasks": "x"}, headers=bot)  # 422
    submit(world, type="code")
    levels = [
        (r.route, r.status, r.levelname)  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "action", None) == "http_request"
    ]
    assert levels == [
        ("/v1/bots", 201, "INFO"),  # registering is news
        ("/v1/bots/{bot_id}/heartbeat", 200, "DEBUG"),
        ("/v1/bots/{bot_id}/claim", 200, "DEBUG"),
        ("/v1/bots/{bot_id}/claim", 422, "INFO"),
        ("/v1/tasks", 201, "INFO"),
    ]


def test_unexpected_error_is_a_500_problem_naming_the_request(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    fleet: LogFleetReads = world.container.fleet  # type: ignore[assignment]
    fleet.failure = RuntimeError("a bug")
    response = world.client.get(
        "/v1/bots", headers={**world.auth("client"), "X-Request-ID": "oops-1"}
    )
    body = assert_problem(response, 500, "internal-error")
    assert body["request_id"] == "oops-1"
    [logged] = [r for r in caplog.records if getattr(r, "action", None) == "http_unhandled"]
    assert logged.exc_info is not None and logged.request_id == "oops-1"  # type: ignore[attr-defined]


# -- health and the database ------------------------------------------------------------


def test_health_needs_no_key_and_readiness_reports_its_checks(world: World) -> None:
    assert world.client.get("/healthz").json() == {"status": "ok", "checks": None}
    ready = world.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    readiness: SetReadiness = world.container.readiness  # type: ignore[assignment]
    readiness.checks["views"] = "behind by 5000 events"
    body = assert_problem(world.client.get("/readyz"), 503, "not-ready")
    assert body["checks"]["views"] == "behind by 5000 events"


def test_pool_timeout_is_503_with_retry_after(world: World) -> None:
    readiness: SetReadiness = world.container.readiness  # type: ignore[assignment]
    readiness.failure = psycopg_pool.PoolTimeout("couldn't get a connection after 3.00 sec")
    response = world.client.get("/readyz")
    assert_problem(response, 503, "database-unavailable")
    assert response.headers["Retry-After"] == "7"


def test_database_refusing_writes_is_503_with_retry_after_and_persists_nothing(
    tmp_path: Path,
) -> None:
    """SQLite's write lock held by another connection: the Hive's save raises the library's
    ``OperationalError`` ("database is locked") after its 1 s lock timeout."""
    db = tmp_path / "hive.sqlite"
    hive = Hive(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(db),
            "SQLITE_LOCK_TIMEOUT": "1",
        }
    )
    try:
        container = make_container(hive, make_settings(), KeyRing(hive, ttl_s=60.0))
        token = issue_tokens(hive)["client"]
        headers = {"Authorization": f"Bearer {token}"}
        app: FastAPI = create_app(container)
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/v1/bots", headers=headers).status_code == 200
            before = hive.recorder.max_notification_id()
            blocker = sqlite3.connect(db, isolation_level=None)
            try:
                blocker.execute("BEGIN IMMEDIATE")  # hold the write lock
                refused = client.post("/v1/tasks", json={"type": "code"}, headers=headers)
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            assert_problem(refused, 503, "database-unavailable")
            assert refused.headers["Retry-After"] == "7"
            assert hive.recorder.max_notification_id() == before
            wait_for(lambda: not container.gate.down, timeout=5, what="the gate to reopen")
            assert (
                client.post("/v1/tasks", json={"type": "code"}, headers=headers).status_code == 201
            )
    finally:
        hive.close()


def test_while_the_database_is_away_requests_are_refused_at_once_then_served_again(
    world: World,
) -> None:
    """After one failure the gate refuses requests without touching the database, until its
    probe (a fake we own here) says the database answers again."""
    back = threading.Event()

    def probe() -> None:
        if not back.is_set():
            raise ConnectionError("still away")

    world.container.gate = DatabaseGate(probe, probe_interval=0.01)
    world.container.gate.failed()
    started = time.monotonic()
    refused = world.client.post("/v1/tasks", json={"type": "code"}, headers=world.auth("client"))
    assert time.monotonic() - started < 0.5
    assert_problem(refused, 503, "database-unavailable")
    assert refused.headers["Retry-After"] == "7"
    back.set()
    wait_for(lambda: not world.container.gate.down, timeout=5, what="the gate to reopen")
    served = world.client.post("/v1/tasks", json={"type": "code"}, headers=world.auth("client"))
    assert served.status_code == 201


# -- OpenAPI ----------------------------------------------------------------------------


def test_openapi_declares_bearer_auth_and_docs_are_served(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer apk_<key id>_<secret>`.",
    }
    assert spec["paths"]["/v1/tasks"]["post"]["security"] == [{"apiKey": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    conflict = spec["paths"]["/v1/bots/{bot_id}/start"]["post"]["responses"]["409"]
    assert conflict["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    assert world.client.get("/docs").status_code == 200


# -- the key ring -----------------------------------------------------------------------


@dataclass
class Ring:
    """A key ring on a hive whose next key is ``key_id`` with the secret of ``token``."""

    hive: Hive
    ring: KeyRing
    clock: FakeClock
    key_id: UUID
    token: str


def ring_of(negative_ttl_s: float = 1.0) -> Ring:
    key_id = uuid4()
    hive = Hive(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        new_id=lambda: key_id,
        new_secret=lambda: "the-secret",
    )
    clock = FakeClock()
    ring = KeyRing(hive, ttl_s=5.0, negative_ttl_s=negative_ttl_s, clock=clock.monotonic)
    return Ring(hive, ring, clock, key_id, format_token(key_id, "the-secret"))


def test_key_ring_remembers_a_miss_briefly_and_a_key_for_its_ttl() -> None:
    r = ring_of()
    hive, ring, clock, key_id, token = r.hive, r.ring, r.clock, r.key_id, r.token
    assert ring.resolve(token) is None  # no such key yet
    hive.keys.issue("carol", Role.CLIENT, ROOT)
    assert ring.resolve(token) is None  # the miss is remembered...
    clock.advance(1.01)
    principal = ring.resolve(token)  # ...for a second only
    assert principal == Principal(key_id, "carol", Role.CLIENT, None)
    assert principal.actor == "carol"
    assert ring.resolve(format_token(key_id, "not-the-secret")) is None
    assert ring.resolve(token.replace("apk_", "xyz_")) is None


def test_key_ring_answers_from_its_cache_alone_or_says_it_cannot() -> None:
    r = ring_of()
    hive, ring, clock, key_id, token = r.hive, r.ring, r.clock, r.key_id, r.token
    hive.keys.issue("carol", Role.CLIENT, ROOT)
    assert ring.cached(token) is MISS  # never read: the request reads it off the event loop
    assert ring.cached("not a token") is None  # malformed: no key could match
    principal = ring.resolve(token)
    assert ring.cached(token) == principal == Principal(key_id, "carol", Role.CLIENT, None)
    assert ring.cached(format_token(key_id, "not-the-secret")) is None
    hive.keys.revoke(key_id, ROOT)
    assert ring.cached(token) == principal  # until its entry expires, as resolve would say
    clock.advance(5.01)
    assert ring.cached(token) is MISS
    assert ring.resolve(token) is None and ring.cached(token) is None  # revoked


def test_key_ring_cache_is_bounded() -> None:
    hive = Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    ring = KeyRing(hive, max_entries=8, clock=FakeClock().monotonic)
    for _ in range(100):
        assert ring.resolve(format_token(uuid4(), "guess")) is None
    assert 0 < len(ring) <= 8


def test_task_detail_shows_unroutable_until_an_assignment_clears_it(world: World) -> None:
    task = submit(world, type="render", capabilities=["render", "gpu"])
    assert task["unroutable"] is None
    world.hive.tasks.mark_unroutable(
        ["gpu", "render"], [UUID(task["id"])], "no bot has gpu", ["gpu"], ENGINE
    )
    got = world.client.get(f"/v1/tasks/{task['id']}", headers=world.auth("client")).json()
    assert got["state"] == "pending"
    assert got["unroutable"] == {
        "reason": "no bot has gpu",
        "missing": ["gpu"],
        "at": got["unroutable"]["at"],
    }
    bot_id, _ = register(world, "renderer", ["render", "gpu"])
    why = {"policy": "test", "bots": [{"bot": bot_id, "score": 1.0}]}
    world.hive.tasks.assign([Assignment(UUID(task["id"]), UUID(bot_id), why)], ENGINE)
    got = world.client.get(f"/v1/tasks/{task['id']}", headers=world.auth("client")).json()
    assert got["unroutable"] is None and got["assignment"] == why


def test_while_the_database_is_away_keys_are_not_looked_up(world: World) -> None:
    """An uncached key would be read from the database: with the gate down, the request is
    refused before authentication tries (it once waited out two connect timeouts)."""

    class CountingKeyRing(KeyRing):
        looked_up = 0

        def resolve(self, token: str) -> Any:
            CountingKeyRing.looked_up += 1
            return super().resolve(token)

    back = threading.Event()

    def probe() -> None:
        if not back.is_set():
            raise ConnectionError("still away")

    world.container.keys = CountingKeyRing(world.container.hive)
    world.container.gate = DatabaseGate(probe, probe_interval=0.01)
    world.container.gate.failed()
    refused = world.client.get("/v1/bots", headers=world.auth("client"))
    assert_problem(refused, 503, "database-unavailable")
    assert CountingKeyRing.looked_up == 0
    back.set()  # the probe's thread ends
    wait_for(lambda: not world.container.gate.down, timeout=5, what="the gate to reopen")


def test_cancel_drain_and_quarantine_take_no_body_too(world: World) -> None:
    """Found by outside testing: `curl -X POST` with no body got 422 from each of them."""
    task = submit(world, type="code")
    cancelled = world.client.post(f"/v1/tasks/{task['id']}/cancel", headers=world.auth("client"))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["error"] == "no reason given"
    drained, _ = register(world, "drained")
    quarantined, _ = register(world, "quarantined")
    for bot_id, action in ((drained, "drain"), (quarantined, "quarantine")):
        response = world.client.post(f"/v1/bots/{bot_id}/{action}", headers=world.auth("admin"))
        assert response.status_code == 200, response.text
    with_reason = world.client.post(
        f"/v1/bots/{drained}/drain", json={"reason": "again"}, headers=world.auth("admin")
    )
    assert with_reason.status_code == 200, with_reason.text  # a repeat changes nothing


# -- retries and re-drives --------------------------------------------------------------


def events_of(world: World, task_id: str, kind: type[Any]) -> list[Any]:
    return [
        e for _, e in log_of(world.hive) if isinstance(e, kind) and str(e.originator_id) == task_id
    ]


def dead(world: World, bot_id: str, **task: Any) -> dict[str, Any]:
    """A task dead-lettered: submitted with one attempt, failed on it."""
    made = submit(world, retry={"max_attempts": 1}, **task)
    ref = started(world, bot_id, made)
    kind = task.get("payload", {}).get("kind", "flaky")
    assert fail(world, bot_id, {**ref, "error": "boom", "error_kind": kind}).status_code == 200
    assert world.hive.get(Task, UUID(made["id"])).state is TaskState.DEAD
    return made


def test_a_submission_narrows_its_retry_policy_and_may_not_widen_it(world: World) -> None:
    narrowed = submit(world, type="code", retry={"max_attempts": 2, "timeout_s": 30})
    assert world.hive.get(Task, UUID(narrowed["id"])).retry == {"max_attempts": 2, "timeout_s": 30}
    assert narrowed["limits"] == {"max_attempts": 2, "timeout_s": 30}  # the answer says so
    before = world.persisted()
    wider = world.client.post(
        "/v1/tasks",
        json={"type": "code", "retry": {"max_attempts": 4}},  # the default policy: 3
        headers=world.auth("client"),
    )
    assert "at most 3" in assert_problem(wider, 422, "invalid-input")["detail"]
    batch = world.client.post(
        "/v1/tasks/batch",
        json={"tasks": [{"type": "code"}, {"type": "code", "retry": {"max_attempts": 9}}]},
        headers=world.auth("client"),
    )
    assert_problem(batch, 422, "invalid-input")
    assert world.persisted() == before


@pytest.mark.parametrize(
    "retry",
    [
        {"max_attempts": 0},
        {"max_attempts": "2"},
        {"max_attempts": 1.5},
        {"timeout_s": 0},
        {"timeout_s": "5"},
        {"backoff_s": 1},
        [],
    ],
)
def test_a_malformed_retry_ask_is_422(world: World, retry: Any) -> None:
    response = world.client.post(
        "/v1/tasks", json={"type": "code", "retry": retry}, headers=world.auth("client")
    )
    assert_problem(response, 422, "validation-failed")


def test_retry_re_drives_a_cancelled_task_and_refuses_a_live_one(world: World) -> None:
    task = submit(world, type="code")
    live = world.client.post(f"/v1/tasks/{task['id']}/retry", headers=world.auth("client"))
    assert (
        "only a failed, dead or cancelled"
        in assert_problem(live, 409, "invalid-transition")["detail"]
    )
    world.client.post(f"/v1/tasks/{task['id']}/cancel", headers=world.auth("client"))
    again = world.client.post(
        f"/v1/tasks/{task['id']}/retry", json={"reason": "fixed"}, headers=world.auth("admin")
    )
    assert again.status_code == 200, again.text
    assert again.json()["state"] == "pending" and again.json()["position"] == world.persisted()
    assert (again.json()["series"], again.json()["attempt"]) == (2, 1)
    [redriven] = events_of(world, task["id"], Task.Redriven)
    assert (redriven.reason, redriven.series, redriven.actor) == ("fixed", 2, "root")
    missing = world.client.post(f"/v1/tasks/{uuid4()}/retry", headers=world.auth("client"))
    assert_problem(missing, 404, "not-found")


def test_retry_re_drives_a_dead_task_as_a_new_series(world: World) -> None:
    bot_id, _ = register(world)
    task = dead(world, bot_id, type="code")
    answer = world.client.post(f"/v1/tasks/{task['id']}/retry", headers=world.auth("client"))
    assert answer.status_code == 200, answer.text
    stored = world.hive.get(Task, UUID(task["id"]))
    assert (stored.state, stored.series, stored.attempt) == (TaskState.PENDING, 2, 1)
    assert events_of(world, task["id"], Task.Redriven)[0].reason == "no reason given"


def test_a_task_waiting_out_its_backoff_can_be_cancelled(world: World) -> None:
    bot_id, _ = register(world)
    task = submit(world, type="code")
    ref = started(world, bot_id, task)
    assert fail(world, bot_id, {**ref, "error": "boom"}).status_code == 200
    assert world.hive.get(Task, UUID(task["id"])).state is TaskState.PENDING  # backing off
    cancelled = world.client.post(f"/v1/tasks/{task['id']}/cancel", headers=world.auth("client"))
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"


def test_a_bulk_re_drive_is_for_admins_only(world: World) -> None:
    body = {"reason": "fixed", "dry_run": True}
    answer = world.client.post("/v1/tasks/redrive", json=body, headers=world.auth("client"))
    assert_problem(answer, 403, "forbidden")


def test_a_bulk_re_drive_counts_on_a_dry_run_then_re_drives_oldest_first(world: World) -> None:
    bot_id, _ = register(world)
    first, second = dead(world, bot_id, type="code"), dead(world, bot_id, type="code")
    other_kind = dead(world, bot_id, type="code", payload={"kind": "oom"})
    submit(world, type="code")  # pending: never found
    before = world.persisted()
    dry = world.client.post(
        "/v1/tasks/redrive",
        json={"filter": {"error_kind": "flaky"}, "dry_run": True, "reason": "fixed"},
        headers=world.auth("admin"),
    )
    assert dry.json() == {"dry_run": True, "count": 2, "task_ids": None, "position": None}
    assert world.persisted() == before
    run = world.client.post(
        "/v1/tasks/redrive",
        json={"filter": {"states": ["dead"], "type": "code"}, "limit": 2, "reason": "fixed"},
        headers=world.auth("admin"),
    )
    assert run.status_code == 200, run.text
    done = run.json()
    assert (done["count"], done["task_ids"]) == (2, [first["id"], second["id"]])
    assert done["position"] == world.persisted()
    for task in (first, second):
        [redriven] = events_of(world, task["id"], Task.Redriven)
        assert (redriven.actor, redriven.reason) == ("root", "fixed")
    assert world.hive.get(Task, UUID(other_kind["id"])).state is TaskState.DEAD  # past the limit
    none = world.client.post(
        "/v1/tasks/redrive",
        json={"filter": {"error_kind": "flaky"}, "reason": "again"},
        headers=world.auth("admin"),
    )
    assert none.json() == {"dry_run": False, "count": 0, "task_ids": [], "position": None}


@pytest.mark.parametrize(
    "body",
    [
        {"dry_run": True},  # no reason
        {"reason": "x", "limit": 4},  # over APIARY_MAX_BATCH (3 here)
        {"reason": "x", "limit": 0},
        {"reason": "x", "filter": {"states": ["pending"]}},
        {"reason": "x", "filter": {"states": []}},
        {"reason": "x", "filter": {"finished_since": "2030-01-01T00:00:00"}},  # no offset
        {"reason": "x", "filter": {"bot_id": str(uuid4())}},
        {"reason": "x", "dry_run": "yes"},
    ],
)
def test_a_bad_bulk_re_drive_is_422(world: World, body: dict[str, Any]) -> None:
    answer = world.client.post("/v1/tasks/redrive", json=body, headers=world.auth("admin"))
    assert_problem(answer, 422, "validation-failed")


def test_a_bulk_re_drive_takes_a_time_range(world: World) -> None:
    bot_id, _ = register(world)
    task = dead(world, bot_id, type="code")
    finished = world.hive.get(Task, UUID(task["id"])).modified_on
    window = {
        "finished_since": finished.isoformat(),
        "finished_until": (finished + timedelta(seconds=1)).isoformat(),
    }
    before = {"finished_until": finished.isoformat()}
    for flt, count in ((before, 0), (window, 1)):
        answer = world.client.post(
            "/v1/tasks/redrive",
            json={"filter": flt, "dry_run": True, "reason": "x"},
            headers=world.auth("admin"),
        )
        assert answer.json()["count"] == count, (flt, answer.text)
