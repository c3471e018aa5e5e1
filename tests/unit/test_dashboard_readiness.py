"""The dashboard's badge: the hive's mode and, apart, this process's readiness (ready while
every check holds, else the failing ones named); the watch tells the streams only when the
badge changed, and each stream sends it as a ``mode`` event when it opens and on each
change; a degraded hive's stream coalesces its views events."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from api.dashboard.readiness import ReadinessWatch, badge_of, readiness_of
from api.dashboard.stream import ViewBroadcast


def test_every_check_ok_is_ready() -> None:
    assert readiness_of({"database": "ok", "view:tasks": "ok"}) == {"ready": True, "failing": {}}


def test_a_failing_check_is_not_ready_and_named() -> None:
    checks = {"database": "ok", "view:tasks": "restarting", "database-gate": "down"}
    assert readiness_of(checks) == {
        "ready": False,
        "failing": {"database-gate": "down", "view:tasks": "restarting"},
    }


def test_the_watch_tells_only_changes_of_readiness_or_mode() -> None:
    checks = {"database": "ok"}
    mode = {"mode": "normal"}
    told: list[dict[str, Any]] = []
    watch = ReadinessWatch(lambda: dict(checks), told.append, lambda: dict(mode))
    watch.look()
    watch.look()
    checks["database"] = "unreachable (OperationalError)"
    watch.look()
    watch.look()
    mode["mode"] = "maintenance"
    watch.tell()
    watch.tell()
    checks["database"] = "ok"
    watch.look()
    assert [(m["mode"], m["readiness"]["ready"]) for m in told] == [
        ("normal", True),
        ("normal", False),
        ("maintenance", False),
        ("maintenance", True),
    ]


def test_the_watch_says_whether_an_engine_is_alive() -> None:
    checks = {"database": "ok", "engine": "ok"}
    watch = ReadinessWatch(lambda: dict(checks), lambda _: None)
    assert watch.engine_alive  # before its first look
    watch.look()
    assert watch.engine_alive
    checks["engine"] = "no engine process is running"
    watch.look()
    assert not watch.engine_alive


def badge(mode: str, **checks: str) -> dict[str, Any]:
    return badge_of({"mode": mode}, readiness_of(checks))


def test_a_stream_sends_the_badge_on_opening_and_on_each_change() -> None:
    async def scenario() -> list[bytes]:
        broadcast = ViewBroadcast()
        broadcast.mode_changed(badge("normal", database="ok"))
        closing = asyncio.Event()
        stream = broadcast.events(closing)
        chunks = [await anext(stream), await anext(stream)]  # retry, then the badge
        broadcast.mode_changed(badge("critical", database="unreachable"))
        chunks.append(await anext(stream))
        closing.set()
        await stream.aclose()
        return chunks

    retry, opened, changed = asyncio.run(scenario())
    assert retry.startswith(b"retry:")
    for chunk, mode, ready in ((opened, "normal", True), (changed, "critical", False)):
        kind, data = chunk.decode().strip().split("\n")
        assert kind == "event: mode"
        sent = orjson.loads(data.removeprefix("data: "))
        assert (sent["mode"], sent["readiness"]["ready"]) == (mode, ready)


def test_a_holding_stream_folds_what_moved_meanwhile_into_one_event() -> None:
    async def scenario() -> tuple[list[bytes], float]:
        clock = asyncio.get_running_loop().time
        broadcast = ViewBroadcast()
        broadcast.hold_s = lambda: 0.2
        closing = asyncio.Event()
        stream = broadcast.events(closing)
        await anext(stream)  # retry
        broadcast.heard("tasks", 1)
        first = await anext(stream)
        sent = clock()
        for position in (2, 3, 4):  # while it holds
            broadcast.heard("tasks", position)
        second = await anext(stream)
        held = clock() - sent
        closing.set()
        await stream.aclose()
        return [first, second], held

    (first, second), held = asyncio.run(scenario())
    assert b'"tasks":1' in first
    assert b'"tasks":4' in second
    assert held >= 0.19  # the next event waited out the hold
