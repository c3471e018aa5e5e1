"""One object starts and stops every part of a process, in order.

Parts start in the order they were added and stop in the reverse order; a part that
runs a thread gets it from here, so stopping sets one event, wakes whoever waits, and
joins every thread before the parts that were started before it are stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

JOIN_S = 10.0


@dataclass(frozen=True)
class Part:
    name: str
    start: Callable[[], object]
    stop: Callable[[], object]


def _nothing() -> None:
    return None


class Lifecycle:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.parts: list[Part] = []
        self.threads: list[threading.Thread] = []
        self.started: list[Part] = []

    def add(
        self, name: str, start: Callable[[], object], stop: Callable[[], object] = _nothing
    ) -> None:
        self.parts.append(Part(name, start, stop))

    def thread(
        self, name: str, run: Callable[[threading.Event], None], wake: Callable[[], None] = _nothing
    ) -> None:
        """A part that is a thread running ``run(stopping)``; ``wake`` hurries its exit."""
        holder: list[threading.Thread] = []

        def start() -> None:
            t = threading.Thread(target=run, args=(self.stopping,), name=name, daemon=True)
            t.start()
            holder.append(t)
            self.threads.append(t)

        def stop() -> None:
            self.stopping.set()
            wake()
            for t in holder:
                t.join(timeout=JOIN_S)
                if t.is_alive():
                    log.warning(
                        "thread did not stop", extra={"action": "thread_stuck", "thread_name": name}
                    )

        self.add(name, start, stop)

    def start(self) -> None:
        for part in self.parts[len(self.started) :]:
            part.start()
            self.started.append(part)

    def stop(self) -> None:
        self.stopping.set()
        while self.started:
            part = self.started.pop()
            part.stop()
