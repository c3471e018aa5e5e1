"""A process's parts start in order and stop in reverse; a thread that will not stop is
reported and left behind, never a crash of the stop itself."""

from __future__ import annotations

import logging
import threading

import pytest

import api.lifecycle
from api.lifecycle import Lifecycle


def test_a_thread_that_will_not_stop_is_logged_and_the_stop_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the CLI work: the warning named its thread in ``extra={"thread": ...}``, a
    field every log record has already, so logging it raised KeyError and Node.stop()
    crashed halfway."""
    monkeypatch.setattr(api.lifecycle, "JOIN_S", 0.05)
    release = threading.Event()
    stopped: list[str] = []
    parts = Lifecycle()
    parts.add("first", lambda: None, lambda: stopped.append("first"))
    parts.thread("stubborn", lambda stopping: release.wait(10))  # ignores ``stopping``
    parts.start()
    try:
        with caplog.at_level(logging.WARNING, logger=api.lifecycle.__name__):
            parts.stop()
        stuck = [r for r in caplog.records if getattr(r, "action", None) == "thread_stuck"]
        assert [getattr(r, "thread_name", None) for r in stuck] == ["stubborn"]
        assert stopped == ["first"]  # the parts before it stopped too
    finally:
        release.set()
