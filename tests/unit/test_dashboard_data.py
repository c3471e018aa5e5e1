"""The dashboard's data, through ``create_app`` with a real Hive (in memory): the config
page's (admin keys only: 403 for any other, and its page says so), the processes on the
overview, each bot's config version; a config change reaching the pages' stream; a task's
attempts (from its own events) with its payload and result; the dead letters' cursor; and
the operators' actions (admins only, with the page's CSRF token; each event stamped with
the admin's principal)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID, uuid4

import orjson
import pytest
from psycopg_pool import ConnectionPool

from api.dashboard.csrf import TOKEN_HEADER, token_for
from api.dashboard.routes import CONFIG_VERSIONS_SHOWN
from api.dashboard.session import COOKIE
from api.dashboard.stream import ViewBroadcast
from domain.policies.retry import RetryPolicy
from domain.tasks import Task, TaskState
from projections.dashboard_reads import (
    ListedTasks,
    before_dead,
    before_seq,
    dead_cursor,
)
from projections.positions import ViewPositions
from projections.redrive_reads import RedriveFilter
from projections.rows import BotFilter, BotRow
from runtime.config import Knobs
from store.processes import ProcessRow
from tests.unit.test_api_contract import (
    ROOT,
    World,
    assert_problem,
    assign,
    register,
    submit,
)

STARTED = datetime(2030, 1, 1, tzinfo=UTC)
SAME_SITE = {"Origin": "http://testserver"}  # what a browser on the dashboard's page sends


@pytest.fixture
def seeded(world: World) -> World:
    """The world with its first config version, as the first process seeds it."""
    world.hive.config.seed(Knobs().document(), "seeded from the environment", ROOT)
    return world


def sign_in(world: World, who: str) -> None:
    world.client.cookies.clear()
    r = world.client.post("/dashboard/session", json={"key": world.tokens[who]}, headers=SAME_SITE)
    assert r.status_code == 200, r.text


def change(world: World, reason: str, **knobs: Any) -> int:
    current = world.hive.config.current()
    document = Knobs.parse(current.document).with_changes(knobs).document()
    world.hive.config.change(document, current.version, reason, ROOT)
    return current.version + 1


def config_data(world: World) -> dict[str, Any]:
    r = world.client.get("/dashboard/data/config")
    assert r.status_code == 200, r.text
    return cast(dict[str, Any], r.json())


# -- the config -----------------------------------------------------------------------


def test_an_admin_sees_the_version_in_force_every_knob_and_the_history(seeded: World) -> None:
    world = seeded
    pool = {"name": "coders", "capabilities": ["code"], "max_bots": 2}
    change(world, "smaller batches", max_batch=10)
    change(world, "a pool for code", pools=[pool])
    world.hive.config.rollback(2, 3, "back to no pool", ROOT)
    sign_in(world, "admin")

    data = config_data(world)
    current = data["current"]
    assert (current["version"], current["actor"], current["reason"]) == (
        4,
        "setup",
        "back to no pool",
    )
    assert current["changed_at"]
    assert set(current["document"]) == set(Knobs.model_fields)  # every knob, by name
    assert current["document"]["max_batch"] == 10
    assert [v["version"] for v in data["history"]] == [4, 3, 2, 1]  # newest first
    assert data["more"] is False
    rollback, pooled, smaller, first = data["history"]
    assert rollback["restores"] == 2
    assert [c["path"] for c in rollback["changes"]] == ["pools"]
    assert pooled["changes"][0]["after"][0]["name"] == "coders"
    assert smaller == {
        "version": 2,
        "actor": "setup",
        "reason": "smaller batches",
        "at": smaller["at"],
        "restores": None,
        "changes": [{"path": "max_batch", "before": 1000, "after": 10}],
    }
    assert first["restores"] is None and first["reason"] == "seeded from the environment"
    # The same numbers as the API's own history.
    api = world.client.get("/v1/config/history", headers=world.auth("admin")).json()["items"]
    assert api == data["history"]


def test_the_history_shows_the_latest_versions_each_against_the_one_before(
    seeded: World,
) -> None:
    world = seeded
    for n in range(CONFIG_VERSIONS_SHOWN + 4):
        change(world, f"batch {n}", max_batch=n + 1)
    sign_in(world, "admin")

    data = config_data(world)
    shown = [v["version"] for v in data["history"]]
    newest = CONFIG_VERSIONS_SHOWN + 5
    assert shown == list(range(newest, newest - CONFIG_VERSIONS_SHOWN, -1))
    assert data["more"] is True
    oldest = data["history"][-1]  # compared with the version before it, not shown
    assert oldest["changes"] == [{"path": "max_batch", "before": 4, "after": 5}]
    api = world.client.get("/v1/config/history?limit=2", headers=world.auth("admin")).json()
    assert [v["version"] for v in api["items"]] == [newest, newest - 1]
    assert api["items"][-1]["changes"][0]["before"] == newest - 3


@pytest.mark.parametrize("who", ["enrol", "bot"])
def test_a_bot_key_cannot_sign_in_nor_use_a_cookie_it_had(seeded: World, who: str) -> None:
    """Found by outside testing: a bot's own key or an enrolment key signed in and read
    every task with its payload, which the API refuses them (403). The dashboard follows
    the API's roles."""
    world = seeded
    if who == "bot":
        register(world, "bot")  # a bot's own key
    world.client.cookies.clear()
    response = world.client.post(
        "/dashboard/session", json={"key": world.tokens[who]}, headers=SAME_SITE
    )
    assert_problem(response, 403, "forbidden")
    assert "client or an admin key" in response.json()["detail"]
    assert COOKIE not in response.cookies
    world.client.cookies.set(COOKIE, world.tokens[who])  # a cookie from before this rule
    for path in ("/dashboard/data/tasks", "/dashboard/data/overview"):
        assert world.client.get(path).status_code == 401
    page = world.client.get("/dashboard/tasks", follow_redirects=False)
    assert page.status_code in (302, 303, 307) and "/dashboard/login" in page.headers["location"]


@pytest.mark.parametrize("who", ["client"])
def test_any_other_key_is_refused_the_config(seeded: World, who: str) -> None:
    world = seeded
    sign_in(world, who)

    body = assert_problem(world.client.get("/dashboard/data/config"), 403, "forbidden")
    assert "admin key" in body["detail"]
    assert "max_batch" not in str(body)
    page = world.client.get("/dashboard/config")
    assert page.status_code == 403
    assert 'id="refused"' in page.text and "Only an admin key may see this" in page.text
    assert "data-refused" in page.text  # the script fetches nothing
    assert "max_batch" not in page.text


def test_no_config_version_yet_is_404(world: World) -> None:
    sign_in(world, "admin")
    assert_problem(world.client.get("/dashboard/data/config"), 404, "not-found")


def test_the_config_page_needs_a_key(seeded: World) -> None:
    assert seeded.client.get("/dashboard/data/config").status_code == 401
    page = seeded.client.get("/dashboard/config", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/dashboard/login"


def test_an_admin_gets_the_page_and_every_page_links_it(seeded: World) -> None:
    sign_in(seeded, "admin")
    page = seeded.client.get("/dashboard/config")
    assert page.status_code == 200
    assert 'data-page="config"' in page.text and "data-refused" not in page.text
    sign_in(seeded, "client")
    assert 'href="/dashboard/config"' in seeded.client.get("/dashboard/bots").text


# -- processes and bots ---------------------------------------------------------------


class OneProcess:
    def __init__(self, *rows: ProcessRow) -> None:
        self.rows = list(rows)

    def live(self) -> list[ProcessRow]:
        return self.rows


class NoDashboardReads:
    def overview(self, failures: int = 10) -> dict[str, Any]:
        return {"tasks_by_state": {}, "queue": [], "fleet": [], "recent_failures": []}

    def bot_details(self, tasks: int = 5) -> dict[Any, dict[str, Any]]:
        return {}

    def tasks(
        self, flt: ListedTasks, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        return [], None

    def dead_letters(
        self, flt: RedriveFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        return [], None

    def latest_runs(
        self, schedule_ids: Sequence[UUID], last: int
    ) -> dict[UUID, list[dict[str, Any]]]:
        return {}


def process(role: str, runs: list[str], leads: list[str], version: int) -> ProcessRow:
    return ProcessRow(uuid4(), role, "hive-1", 4242, STARTED, STARTED, version, runs, leads)


def test_the_overview_shows_each_process_and_the_hive_checks(world: World) -> None:
    loops = ["dispatcher", "reaper"]
    world.container.dashboard = NoDashboardReads()
    world.container.processes = OneProcess(
        process("api", [], [], 3), process("engine", loops, ["dispatcher"], 2)
    )
    world.container.config_version = lambda: 3
    sign_in(world, "client")

    r = world.client.get("/dashboard/data/overview")
    assert r.status_code == 200, r.text
    processes = r.json()["processes"]
    assert [(p["role"], p["config_version"], p["leads"]) for p in processes["items"]] == [
        ("api", 3, []),
        ("engine", 2, ["dispatcher"]),
    ]
    assert processes["items"][1]["runs"] == loops
    assert processes["checks"] == {
        "engine": "ok",
        "leader:dispatcher": "ok",
        "leader:reaper": "no leader",
    }
    assert processes["config_version"] == 3


def test_the_bots_page_shows_each_bots_config_version(world: World) -> None:
    said, silent = register(world, "said")[0], register(world, "silent")[0]
    fleet = world.container.fleet

    class Said:
        def list(
            self, flt: BotFilter, *, limit: int, cursor: str | None
        ) -> tuple[list[BotRow], str | None]:
            rows, more = fleet.list(flt, limit=limit, cursor=cursor)
            return [
                dataclasses.replace(b, config_version=2) if str(b.bot_id) == said else b
                for b in rows
            ], more

    world.container.fleet = cast(Any, Said())
    world.container.dashboard = NoDashboardReads()
    world.container.config_version = lambda: 3
    sign_in(world, "client")

    data = world.client.get("/dashboard/data/bots").json()
    assert {b["id"]: b["config_version"] for b in data["items"]} == {said: 2, silent: None}
    assert data["config_version"] == 3


# -- live -----------------------------------------------------------------------------


def test_a_config_view_notification_reaches_the_pages_stream() -> None:
    """The config view's runner publishes ``config:<position>`` on ``apiary_views`` like
    every view's; the positions' listener passes every view's on to the broadcast, which
    tells each stream (the config page re-fetches on it)."""

    async def scenario() -> list[bytes]:
        broadcast = ViewBroadcast()
        positions = ViewPositions(cast(ConnectionPool[Any], None), "", ("tasks",))
        positions.listeners.append(broadcast.heard)
        closing = asyncio.Event()
        stream = broadcast.events(closing)
        chunks = [await anext(stream)]  # retry
        positions._heard("config:42")
        chunks.append(await anext(stream))
        closing.set()
        await stream.aclose()
        return chunks

    _, heard = asyncio.run(scenario())
    kind, data = heard.decode().strip().split("\n")
    assert kind == "event: views"
    assert orjson.loads(data.removeprefix("data: ")) == {"config": 42}


# -- the task page, from a real (in-memory) log -----------------------------------------


def run_and_fail(world: World, task_id: str, bot_id: str, token: int) -> None:
    assign(world, task_id, bot_id)
    ref = {"task_id": task_id, "fencing_token": token}
    for path, report in (("start", ref), ("fail", {**ref, "error": f"boom {token}"})):
        r = world.client.post(
            f"/v1/bots/{bot_id}/{path}", json={"tasks": [report]}, headers=world.auth("b1")
        )
        assert r.status_code == 200, r.text


def dead_task(world: World) -> str:
    """A task that failed twice and was dead-lettered (two attempts, no backoff)."""
    policy = RetryPolicy(max_attempts=2, initial_backoff_s=0, max_backoff_s=0, jitter=0)
    world.hive.tasks.policies = lambda _: policy
    bot_id, _ = register(world)
    task = submit(world, type="code", payload={"text": "<b>hello</b>", "n": 1})
    run_and_fail(world, task["id"], bot_id, 1)
    run_and_fail(world, task["id"], bot_id, 2)
    assert world.hive.get(Task, UUID(task["id"])).state is TaskState.DEAD
    return str(task["id"])


def test_the_task_page_has_its_attempts_and_its_payload_as_data(world: World) -> None:
    task_id = dead_task(world)
    sign_in(world, "client")

    r = world.client.get(f"/dashboard/data/tasks/{task_id}")
    assert r.status_code == 200, r.text
    data = r.json()
    rows = [(a["series"], a["attempt"], a["outcome"], a["error"]) for a in data["attempts"]]
    assert rows == [(1, 1, "failed", "boom 1"), (1, 2, "failed", "boom 2")]
    assert data["task"]["dead_reason"] == "attempts exhausted: 2 of 2"
    assert all(a["started_at"] and a["ended_at"] for a in data["attempts"])
    assert data["task"]["payload"] == {"text": "<b>hello</b>", "n": 1}  # JSON, not text
    kinds = [e["kind"] for e in data["timeline"]]
    assert kinds.count("RetryScheduled") == 1 and kinds[-1] == "DeadLettered"


# -- paging the dead letters ----------------------------------------------------------


def test_a_dead_letter_cursor_reads_back_and_a_made_up_one_is_refused() -> None:
    at = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert before_dead(dead_cursor(at, 42)) == (at, 42)
    assert before_seq("n17") == 17
    for junk in ("d", "d1", "d1.", "dx.1", "n42", "d1.2.3", "d" + "9" * 19 + ".1"):
        with pytest.raises(ValueError):
            before_dead(junk)
    for junk in ("n", "nx", "d1.1", "s5"):
        with pytest.raises(ValueError):
            before_seq(junk)


def test_a_dead_letter_filter_says_what_it_takes() -> None:
    since = datetime(2030, 1, 1, tzinfo=UTC)
    where, params = RedriveFilter(("dead",), "code", "oom", since).where()
    assert where == ["state = ANY(%s)", "type = %s", "error_kind = %s", "finished_at >= %s"]
    assert params == [["dead"], "code", "oom", since]


def test_the_dead_letters_data_refuses_a_bad_filter(world: World) -> None:
    sign_in(world, "client")
    for query in ("since=yesterday", "type=Bad Type", "since=2030-01-01T00:00:00", "limit=0"):
        r = world.client.get(f"/dashboard/data/dead-letters?{query}")
        assert_problem(r, 422, "validation-failed")


# -- operators' actions ---------------------------------------------------------------


def acting(world: World) -> dict[str, str]:
    """What the page's script sends with an action: its origin and the CSRF token."""
    return {**SAME_SITE, TOKEN_HEADER: token_for(world.client.cookies[COOKIE])}


def test_an_admin_retries_a_dead_task_and_the_log_says_who(world: World) -> None:
    task_id = dead_task(world)
    sign_in(world, "admin")

    r = world.client.post(
        f"/dashboard/actions/tasks/{task_id}/retry",
        json={"reason": "the handler is fixed"},
        headers={**acting(world), "X-Request-ID": "dash-1"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "pending"
    redriven = world.hive.history(UUID(task_id))[-1]
    assert isinstance(redriven, Task.Redriven)
    assert (redriven.actor, redriven.request_id) == ("root", "dash-1")  # the admin key's
    assert (redriven.reason, redriven.series) == ("the handler is fixed", 2)
    again = world.client.post(f"/dashboard/actions/tasks/{task_id}/retry", headers=acting(world))
    assert_problem(again, 409, "invalid-transition")  # pending now: nothing to retry


def test_a_client_session_is_refused_every_action(world: World) -> None:
    task = submit(world, type="code")
    bot_id, _ = register(world)
    sign_in(world, "client")
    for path in (
        f"/dashboard/actions/tasks/{task['id']}/retry",
        f"/dashboard/actions/tasks/{task['id']}/cancel",
        "/dashboard/actions/dead-letters/redrive",
        f"/dashboard/actions/bots/{bot_id}/drain",
        f"/dashboard/actions/bots/{bot_id}/quarantine",
        f"/dashboard/actions/bots/{bot_id}/reinstate",
    ):
        body = assert_problem(
            world.client.post(path, json={}, headers=acting(world)), 403, "forbidden"
        )
        assert "Only an admin key" in body["detail"]
    assert world.hive.get(Task, UUID(task["id"])).state is TaskState.PENDING
    assert "data-admin" not in world.client.get("/dashboard/tasks").text  # no buttons


def test_an_action_without_the_pages_token_or_origin_is_refused(world: World) -> None:
    task = submit(world, type="code")
    sign_in(world, "admin")
    path = f"/dashboard/actions/tasks/{task['id']}/cancel"
    token = acting(world)[TOKEN_HEADER]
    for headers in (
        SAME_SITE,  # no CSRF token: a forged form post
        {**SAME_SITE, TOKEN_HEADER: "0" * 64},
        {"Origin": "https://evil.example", TOKEN_HEADER: token},
        {TOKEN_HEADER: token},  # no origin at all
    ):
        assert_problem(world.client.post(path, json={}, headers=headers), 403, "forbidden")
    assert world.hive.get(Task, UUID(task["id"])).state is TaskState.PENDING
    assert "data-admin" in world.client.get("/dashboard/tasks").text
    done = world.client.post(path, json={}, headers=acting(world))
    assert done.status_code == 200 and done.json()["state"] == "cancelled", done.text


def test_an_admin_quarantines_reinstates_and_drains_a_bot(world: World) -> None:
    bot_id, _ = register(world)
    sign_in(world, "admin")
    for action, state in (
        ("quarantine", "quarantined"),
        ("reinstate", "ready"),
        ("drain", "draining"),
    ):
        r = world.client.post(
            f"/dashboard/actions/bots/{bot_id}/{action}",
            json={"reason": "from the dashboard"} if action != "reinstate" else None,
            headers=acting(world),
        )
        assert r.status_code == 200, r.text
        assert r.json()["state"] == state
    events = world.hive.history(UUID(bot_id))[-3:]
    assert {e.actor for e in events} == {"root"}
    unknown = world.client.post(f"/dashboard/actions/bots/{uuid4()}/drain", headers=acting(world))
    assert_problem(unknown, 404, "not-found")


class Found:
    """The dead letters a filter finds (what the views would say), and the filters asked."""

    def __init__(self, ids: list[UUID]) -> None:
        self.ids, self.asked = ids, cast(list[tuple[RedriveFilter, int]], [])

    def find(self, flt: RedriveFilter, limit: int) -> list[UUID]:
        self.asked.append((flt, limit))
        return self.ids[:limit]


def test_a_bulk_redrive_counts_first_then_redrives_what_the_filter_finds(world: World) -> None:
    ids = [UUID(dead_task(world))]
    for _ in range(2):
        task = submit(world, type="code")
        world.hive.tasks.cancel(UUID(task["id"]), "stale", ROOT)
        ids.append(UUID(task["id"]))
    found = Found(ids)
    world.container.redrive = cast(Any, found)
    sign_in(world, "admin")
    path = "/dashboard/actions/dead-letters/redrive"
    since = "2030-01-01T00:00:00Z"

    dry = world.client.post(
        path,
        json={"type": "code", "since": since, "limit": 2, "dry_run": True},
        headers=acting(world),
    )
    assert dry.status_code == 200, dry.text
    assert dry.json() == {"count": 2, "more": True}
    flt, limit = found.asked[-1]
    assert (flt.states, flt.type, flt.error_kind, flt.finished_since, limit) == (
        ("dead",),
        "code",
        None,
        datetime(2030, 1, 1, tzinfo=UTC),
        3,
    )
    assert all(world.hive.get(Task, i).state is not TaskState.PENDING for i in ids)  # nothing done

    world.hive.tasks.redrive([ids[1]], "meanwhile", ROOT)  # no longer dead: passed over
    done = world.client.post(path, json={"type": "code", "reason": "bulk"}, headers=acting(world))
    assert done.status_code == 200, done.text
    assert done.json()["redriven"] == 2
    for task_id in (ids[0], ids[2]):
        last = world.hive.history(task_id)[-1]
        assert isinstance(last, Task.Redriven) and (last.actor, last.reason) == ("root", "bulk")
    assert world.hive.history(ids[1])[-1].reason == "meanwhile"  # one re-drive, not two
