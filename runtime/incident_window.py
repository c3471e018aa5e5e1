"""Events counted over a sliding window, per second, with the first of them as evidence.

What the incident detector counts (``runtime/incidents.py``): a deque of one-second
buckets, each with its count, the first ``MAX_EVIDENCE`` events' evidence and, for the
cascade's window, the bots and task types they touched. Adding an event costs O(1) (the
evidence item is built only while the bucket has room for it); pruning drops whole
buckets. Memory is bounded by the window's seconds, whatever the rate: a drain of
thousands of outcomes a second adds to one bucket.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from domain.incidents import MAX_EVIDENCE
from domain.policies.incidents import Counted


def evidence_of(
    position: int, event: Any, task_type: str | None = None, bot_id: Any = None
) -> dict[str, Any]:
    """One event as an incident cites it: where it is in the log, whose and what it is."""
    item: dict[str, Any] = {
        "position": position,
        "aggregate_id": str(event.originator_id),
        "version": event.originator_version,
        "event": type(event).__qualname__,
        "at": event.timestamp.isoformat(),
    }
    if task_type is not None:
        item["task_type"] = task_type
    if bot_id is not None:
        item["bot_id"] = str(bot_id)
    return item


class Bucket:
    __slots__ = ("bots", "count", "evidence", "second", "types")

    def __init__(self, second: int) -> None:
        self.second = second
        self.count = 0
        self.evidence: list[dict[str, Any]] = []
        self.bots: set[Any] = set()  # ids as the events have them (made text when read)
        self.types: set[str] = set()


class Window:
    def __init__(self, *, keep: int = MAX_EVIDENCE, spread: bool = False) -> None:
        self.keep = keep  # evidence items per bucket (0: only counted)
        self.spread = spread  # keep the bots and types touched
        self.buckets: deque[Bucket] = deque()
        self.count = 0

    def add(
        self,
        second: int,
        position: int = 0,
        event: Any = None,
        task_type: str | None = None,
        bot_id: Any = None,
    ) -> None:
        """One event at ``second`` (seconds since the epoch); events a little out of
        order (two writers' clocks) join the latest bucket."""
        buckets = self.buckets
        if buckets and buckets[-1].second >= second:
            b = buckets[-1]
        else:
            b = Bucket(second)
            buckets.append(b)
        b.count += 1
        self.count += 1
        if event is not None and len(b.evidence) < self.keep:
            b.evidence.append(evidence_of(position, event, task_type, bot_id))
        if self.spread:
            if bot_id is not None:
                b.bots.add(bot_id)
            if task_type is not None:
                b.types.add(task_type)

    def prune(self, now_s: float, window_s: float) -> None:
        """Forget the buckets that ended ``window_s`` or more before ``now_s``."""
        since = now_s - window_s
        buckets = self.buckets
        while buckets and buckets[0].second + 1 <= since:
            self.count -= buckets.popleft().count

    def counted(self) -> Counted:
        """What the window holds (prune first): the first ``MAX_EVIDENCE`` items."""
        evidence: list[dict[str, Any]] = []
        bots: set[Any] = set()
        types: set[str] = set()
        for b in self.buckets:
            if len(evidence) < MAX_EVIDENCE:
                evidence += b.evidence[: MAX_EVIDENCE - len(evidence)]
            if self.spread:
                bots |= b.bots
                types |= b.types
        named = frozenset(str(b) for b in bots)
        return Counted(self.count, tuple(evidence), named, frozenset(types))

    def __bool__(self) -> bool:
        return self.count > 0
