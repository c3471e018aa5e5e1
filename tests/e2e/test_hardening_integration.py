"""Hardening, working together with everything else, on a real server and real bots.

**Config Manager.** While four bots drain a steady stream of tasks, one change of the
runtime configuration moves the lease TTL, the heartbeat interval, the routing weights, a
pool's ``max_bots`` and the payload limit: every process (the server and each bot) reports
the new version within 1 s, the next submission over the old limit gets 413, the
autoscaler keeps the pool within its new ``max_bots``, and no task is lost or held twice
(checked over the whole log). A rollback puts the old values in force everywhere again.
Two writers changing the config at the same time (two engines over the log, or two
operators over HTTP) conflict on the version: one wins, the other is refused and
overwrites nothing.

**Degradation Manager.** An operator puts the hive in maintenance and back, then degraded
and back, while 4 clients submit (low and high priorities). No acknowledged submission is
lost; every shed request got 503 with ``Retry-After``; the work accepted in maintenance is
held until the mode returns to normal, and then runs; every answer names the mode.

Later hardening capabilities (retry manager, incident detector, audit proofs, disaster
recovery, migrations) add their scenarios to this suite.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from api.bootstrap import open_hive
from api.settings import Settings
from domain.cause import Cause
from domain.errors import StaleVersion
from runtime.config import Knobs
from tests.e2e.harness import Bot, Hive, start_bot
from tests.integration.log_checks import double_holds, log_events
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

POOL = {
    "name": "coders",
    "capabilities": ["code"],
    "min_bots": 0,
    "max_bots": 3,
    "max_concurrency": 2,
    "up_cooldown_s": 0,
    "down_cooldown_s": 1,
}
CHANGES = {
    "bot_lease_ttl_s": 8.0,
    "heartbeat_interval_s": 1.0,
    "routing_success_weight": 0.4,
    "routing_speed_weight": 0.3,
    "routing_free_weight": 0.3,
    "max_payload_bytes": 4096,
}
OVER_THE_NEW_LIMIT = {"blob": "x" * 6000}  # fits the old limit (256 kB), not the new one


@pytest.fixture
def pooled_hive(make_hive: Callable[..., Hive]) -> Hive:
    return make_hive(APIARY_POOLS=json.dumps([POOL]), APIARY_SCALER_INTERVAL_S="0.2").start()


@contextmanager
def steady_stream(url: str, token: str) -> Iterator[list[str]]:
    """A client submitting 10 no-op tasks every 50 ms until the block ends; the ids."""
    ids: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as c:
                n = 0
                while not stop.wait(0.05):  # the stream's pace, not a wait for an outcome
                    batch = [{"type": "noop", "payload": {"n": n + i}} for i in range(10)]
                    r = c.post("/v1/tasks/batch", json={"tasks": batch})
                    assert r.status_code == 201, r.text
                    ids.extend(t["task"]["id"] for t in r.json()["items"])
                    n += 10
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=submit, name="stream")
    thread.start()
    try:
        yield ids
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors[0]


def versions(db_url: str) -> tuple[set[int], set[int]]:
    """The config versions the hive's processes and its ready bots say they run."""
    with psycopg.connect(db_url) as conn:
        processes = {r[0] for r in conn.execute("SELECT config_version FROM processes")}
        bots = {
            r[0]
            for r in conn.execute(
                "SELECT l.config_version FROM fleet_view f JOIN leases l ON l.holder = f.bot_id "
                "WHERE f.state = 'ready'"
            )
        }
    return processes, bots


def change(admin: httpx.Client, body: dict[str, Any], path: str = "") -> httpx.Response:
    current = admin.get("/v1/config")
    method = "POST" if path else "PATCH"
    return admin.request(
        method, f"/v1/config{path}", json=body, headers={"If-Match": current.headers["ETag"]}
    )


def pool_size(admin: httpx.Client) -> tuple[int, int]:
    """The coders pool's desired size and its live bots."""
    (pool,) = [p for p in admin.get("/v1/pools").json()["items"] if p["name"] == "coders"]
    return pool["desired"], sum(pool["bots"].values())


def test_a_config_change_reaches_every_process_under_load_and_rolls_back(
    pooled_hive: Hive,
) -> None:
    hive = pooled_hive
    admin = hive.client(hive.key("admin"))
    client_key = hive.key("client")
    enrol = hive.key("bot")
    bots: list[Bot] = [
        start_bot(hive, enrol, f"drain-{i}", "--capabilities", "noop", "--max-concurrency", "8")
        for i in range(4)
    ]
    try:
        first = admin.get("/v1/config").json()
        assert first["document"]["max_payload_bytes"] == 256 * 1024
        wait_for(
            lambda: (
                versions(hive.db_url) == ({first["version"]}, {first["version"]})
                and len(admin.get("/v1/bots").json()["items"]) == 4
            ),
            timeout=30,
            what="four bots on the first version",
        )
        with steady_stream(hive.url, client_key) as stream:
            wait_for(lambda: len(stream) >= 200, timeout=30, what="the stream flowing")
            pools = [{**POOL, "max_bots": 1}]
            answer = change(admin, {"changes": {**CHANGES, "pools": pools}, "reason": "harden"})
            assert answer.status_code == 200, answer.text
            changed_at = time.monotonic()
            second = answer.json()
            assert second["version"] == first["version"] + 1
            wait_for(
                lambda: versions(hive.db_url) == ({second["version"]}, {second["version"]}),
                timeout=5,
                what="every process and bot on the new version",
                interval=0.01,
            )
            assert time.monotonic() - changed_at <= 1.0
            client = hive.client(client_key)
            over = client.post("/v1/tasks", json={"type": "noop", "payload": OVER_THE_NEW_LIMIT})
            assert over.status_code == 413, over.text
            # A burst for the pool: the autoscaler may grow it to its new max_bots only.
            burst = [{"type": "code", "payload": {"source": "print(1)"}} for _ in range(40)]
            coded = client.post("/v1/tasks/batch", json={"tasks": burst})
            assert coded.status_code == 201, coded.text
            code_ids = [t["task"]["id"] for t in coded.json()["items"]]
            seen: list[tuple[int, int]] = []

            def code_done() -> bool:
                seen.append(pool_size(admin))
                states = {t["state"] for t in _tasks(client, code_ids)}
                return states == {"succeeded"}

            wait_for(code_done, timeout=120, what="the pool's burst done", interval=0.2)
            assert max(desired for desired, _ in seen) == 1
            assert max(live for _, live in seen) <= 1
            assert any(live == 1 for _, live in seen)  # it did launch, within its limit
        # Roll back: version 1's values again, as a new version, everywhere.
        back = change(admin, {"version": first["version"], "reason": "undo"}, "/rollback")
        assert back.status_code == 200, back.text
        third = back.json()
        assert third["version"] == second["version"] + 1
        assert third["document"] == first["document"]
        wait_for(
            lambda: versions(hive.db_url) == ({third["version"]}, {third["version"]}),
            timeout=5,
            what="every process and bot on the rollback",
        )
        fits = client.post("/v1/tasks", json={"type": "noop", "payload": OVER_THE_NEW_LIMIT})
        assert fits.status_code == 201, fits.text
        ids = [*stream, fits.json()["id"]]
        _all_done_once(hive, client, ids, "every task of the stream", timeout=120)
    finally:
        for bot in bots:
            bot.stop()


def test_two_writers_at_once_conflict_on_the_version_and_neither_overwrites(
    pooled_hive: Hive,
) -> None:
    hive = pooled_hive
    admin = hive.client(hive.key("admin"))
    # Two engines over the same log, each deciding from the version it read.
    engines = [open_hive(hive.db_url, Settings()) for _ in range(2)]
    try:
        current = engines[0].config.current()
        knobs = Knobs.parse(current.document)
        documents = [
            knobs.with_changes({"max_batch": 11}).document(),
            knobs.with_changes({"dispatch_page": 77}).document(),
        ]
        start = threading.Barrier(2)
        outcomes: list[str] = ["", ""]

        def write(n: int) -> None:
            start.wait(timeout=10)
            try:
                engines[n].config.change(
                    documents[n], current.version, f"engine {n}", Cause(f"engine-{n}", "r")
                )
                outcomes[n] = "won"
            except StaleVersion:
                outcomes[n] = "refused"

        threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(outcomes) == ["refused", "won"]
        winner = outcomes.index("won")
        now = admin.get("/v1/config").json()
        assert now["version"] == current.version + 1
        assert now["document"] == json.loads(documents[winner])
        assert now["reason"] == f"engine {winner}"
    finally:
        for engine in engines:
            engine.close()
    # Two operators over HTTP, both against the version they read: one 200, one 412.
    etag = admin.get("/v1/config").headers["ETag"]
    answers = [
        admin.patch(
            "/v1/config",
            json={"changes": {"max_batch": 10 + n}, "reason": f"operator {n}"},
            headers={"If-Match": etag},
        )
        for n in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 412]
    assert admin.get("/v1/config").json()["document"]["max_batch"] == 10


@dataclass
class Acked:
    """A task a client's submission acknowledged, the mode its answer named (the one it
    was judged by, read as it arrived), when it was sent and when answered."""

    id: str
    priority: int
    mode: str
    at: float
    sent: float


@contextmanager
def four_clients(url: str, token: str) -> Iterator[tuple[list[Acked], list[httpx.Response]]]:
    """Four clients, each submitting one task (priority 2 or 8, in turn) every 20 ms until
    the block ends; what was acknowledged, and what was refused."""
    acked: list[Acked] = []
    refused: list[httpx.Response] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def submit(n: int) -> None:
        try:
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as c:
                for i in itertools.count():
                    if stop.wait(0.02):  # the clients' pace, not a wait for an outcome
                        return
                    priority = 2 if (i + n) % 2 else 8
                    sent = time.monotonic()
                    r = c.post("/v1/tasks", json={"type": "noop", "priority": priority})
                    mode = r.headers["X-Apiary-Mode"]
                    if r.status_code == 201:
                        acked.append(Acked(r.json()["id"], priority, mode, time.monotonic(), sent))
                    else:
                        assert r.status_code == 503, r.text
                        refused.append(r)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=submit, args=(n,), name=f"client-{n}") for n in range(4)]
    for t in threads:
        t.start()
    try:
        yield acked, refused
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[0]


def test_maintenance_and_degraded_and_back_while_four_clients_submit(hive: Hive) -> None:
    hive.start()
    admin = hive.client(hive.admin_key())
    client = hive.client(hive.key("client"))
    enrol = hive.key("bot")
    bots = [
        start_bot(hive, enrol, f"worker-{i}", "--capabilities", "noop", "--max-concurrency", "8")
        for i in range(2)
    ]

    def mode_is(mode: str) -> bool:
        answer = admin.get("/v1/mode")
        return answer.json()["mode"] == mode and answer.headers["X-Apiary-Mode"] == mode

    def put(mode: str) -> None:
        answer = admin.put("/v1/mode", json={"mode": mode, "reason": f"test: {mode}"})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["recorded"], answer.json()["set_by"]) == (mode, "operator")

    def clear() -> None:
        answer = admin.post("/v1/mode/clear", json={"reason": "test: back"})
        assert answer.status_code == 200 and answer.json()["mode"] == "normal", answer.text

    try:
        with four_clients(hive.url, hive.key("client")) as (acked, refused):
            wait_for(lambda: len(acked) >= 40, timeout=20, what="the clients flowing")
            put("maintenance")
            entered = time.monotonic()

            def held() -> list[str]:  # accepted once a round begun before it had ended
                return [a.id for a in acked if a.mode == "maintenance" and a.at > entered + 0.2]

            wait_for(lambda: len(held()) >= 40, timeout=20, what="work accepted in maintenance")
            assert {t["state"] for t in _tasks(client, held())} == {"pending"}  # held
            assert client.get("/healthz").status_code == 200
            clear()
            wait_for(
                lambda: {t["state"] for t in _tasks(client, held())} == {"succeeded"},
                timeout=20,
                what="the held work run after maintenance",
            )
            put("degraded")
            wait_for(lambda: len(refused) >= 10, timeout=20, what="low priorities shed")
            during = [a for a in acked if a.mode == "degraded"]
            assert during and {a.priority for a in during} == {8}  # the core keeps working
            clear()
            cleared = time.monotonic()
            assert mode_is("normal")
            back = len(acked)
            wait_for(lambda: len(acked) >= back + 20, timeout=20, what="accepting all again")
        # Sent after the mode was cleared: judged normal (one in flight then may say degraded).
        assert not [a for a in acked if a.sent > cleared and a.mode != "normal"]
        for r in refused:  # every shed request: 503, Retry-After, the mode named
            assert r.headers["Retry-After"].isdigit() and r.headers["X-Apiary-Mode"] == "degraded"
            assert r.json()["type"].endswith("/mode-refused")
        ids = [a.id for a in acked]
        _all_done_once(hive, client, ids, "every acknowledged task", timeout=30)
    finally:
        for bot in bots:
            bot.stop()


def _all_done_once(
    hive: Hive, client: httpx.Client, ids: list[str], what: str, *, timeout: float
) -> None:
    """Every task of ``ids`` succeeded, none lost, none held by two bots at once."""
    wait_for(
        lambda: {t["state"] for t in _tasks(client, ids)} == {"succeeded"},
        timeout=timeout,
        what=f"{what} done ({len(ids)}: {_states(client, ids)})",
        interval=0.2,
    )
    assert len(_tasks(client, ids)) == len(set(ids))  # none lost
    assert double_holds(log_events(hive.db_url)) == []  # none held by two bots at once


def _tasks(client: httpx.Client, ids: list[str]) -> list[dict[str, Any]]:
    wanted, found = set(ids), []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/tasks", params=params).json()
        found += [t for t in page["items"] if t["id"] in wanted]
        cursor = page.get("next_cursor")
        if not cursor:
            return found


def _states(client: httpx.Client, ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in _tasks(client, ids):
        out[t["state"]] = out.get(t["state"], 0) + 1
    return out
