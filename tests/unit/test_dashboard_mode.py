"""The dashboard's mode: normal while every check holds, degraded naming the ones that fail;
the watch tells the streams only when it changed, and each stream sends it as a ``mode``
event when it opens and on each change."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from api.dashboard.mode import ModeWatch, mode_of
from api.dashboard.stream import ViewBroadcast


def test_every_check_ok_is_normal() -> None:
    assert mode_of({"database": "ok", "view:tasks": "ok"}) == {"mode": "normal", "failing": {}}


def test_a_failing_check_is_degraded_and_named() -> None:
    checks = {"database": "ok", "view:tasks": "restarting", "database-gate": "down"}
    assert mode_of(checks) == {
        "mode": "degraded",
        "failing": {"database-gate": "down", "view:tasks": "restarting"},
    }


def test_the_watch_tells_only_changes() -> None:
    checks = {"database": "ok"}
    told: list[dict[str, Any]] = []
    watch = ModeWatch(lambda: dict(checks), told.append)
    watch.look()
    watch.look()
    checks["database"] = "unreachable (OperationalError)"
    watch.look()
    watch.look()
    checks["database"] = "ok"
    watch.look()
    assert [m["mode"] for m in told] == ["normal", "degraded", "normal"]


def test_a_stream_sends_the_mode_on_opening_and_on_each_change() -> None:
    async def scenario() -> list[bytes]:
        broadcast = ViewBroadcast()
        broadcast.mode_changed(mode_of({"database": "ok"}))
        closing = asyncio.Event()
        stream = broadcast.events(closing)
        chunks = [await anext(stream), await anext(stream)]  # retry, then the mode
        broadcast.mode_changed(mode_of({"database": "unreachable"}))
        chunks.append(await anext(stream))
        closing.set()
        await stream.aclose()
        return chunks

    retry, opened, changed = asyncio.run(scenario())
    assert retry.startswith(b"retry:")
    for chunk, mode in ((opened, "normal"), (changed, "degraded")):
        kind, data = chunk.decode().strip().split("\n")
        assert kind == "event: mode"
        assert orjson.loads(data.removeprefix("data: "))["mode"] == mode
