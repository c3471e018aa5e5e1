"""What a process keeps in memory is bounded by what it costs, not by how many: the
aggregate cache and the shared decoded events stay within their budgets, the least
recently used (or the oldest) go first, and a smaller budget set live takes effect at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

from domain.aggregate_cache import OVERHEAD_BYTES, AggregateCache, cost
from domain.cause import Cause
from domain.tasks import Task
from store.follower import EVENT_OVERHEAD_BYTES, RecentEvents

AT = datetime(2030, 1, 1, tzinfo=UTC)
CAUSE = Cause("tester", "r1")


def task(payload_bytes: int) -> Task:
    t = Task.submit(
        task_id=uuid4(),
        type="code",
        priority=5,
        capabilities=None,
        payload='"' + "x" * payload_bytes + '"',
        idempotency_key=None,
        cause=CAUSE,
        at=AT,
    )
    t.collect_events()
    return t


def test_an_aggregate_costs_its_text_on_top_of_a_fixed_overhead() -> None:
    small, large = task(10), task(100_000)
    assert OVERHEAD_BYTES < cost(small) < OVERHEAD_BYTES + 200
    assert cost(large) - cost(small) == 100_000 - 10


def test_the_cache_stays_within_its_bytes_and_keeps_the_recently_used() -> None:
    cache = AggregateCache(max_bytes=1_000_000)
    first = task(10)
    cache.put([first])
    put = [first]
    for _ in range(50):
        put.append(task(50_000))
        cache.put([put[-1]])
        assert cache.get(first.id) is first  # used each time: never the one to go
    assert cache.bytes <= 1_000_000
    kept = [a for a in put if cache.peek(a.id) is a]
    assert len(kept) == len(cache) < 51  # the large ones pushed each other out, oldest first
    assert kept == [first, *put[-(len(kept) - 1) :]]
    assert cache.bytes == sum(cost(a) for a in kept)


def test_a_smaller_budget_set_live_trims_at_once() -> None:
    cache = AggregateCache(max_bytes=10_000_000)
    kept = [task(1_000) for _ in range(100)]
    cache.put(kept)
    assert len(cache) == 100
    cache.resize(20_000)
    assert cache.bytes <= 20_000
    assert cache.peek(kept[-1].id) is kept[-1] and cache.peek(kept[0].id) is None


@dataclass(frozen=True)
class Event:
    body: str


def test_decoded_events_stay_within_their_bytes_and_the_evicted_decode_again() -> None:
    decoded: list[int] = []

    def decode(n: object) -> Event:
        decoded.append(n.id)  # type: ignore[attr-defined]
        return Event("decoded")

    recent = RecentEvents(decode, max_bytes=100_000)
    recent.remember([(p, Event("y" * 1_000)) for p in range(1, 501)])
    assert recent.bytes <= 100_000
    per_event = EVENT_OVERHEAD_BYTES + 1_000
    assert recent.bytes >= 0.9 * 100_000 - per_event  # trimmed to nine tenths, not emptied

    @dataclass
    class Note:
        id: int

    assert recent.decode(Note(500)) == Event("y" * 1_000)  # recent: as remembered
    assert decoded == []
    assert recent.decode(Note(1)) == Event("decoded")  # the oldest went: decoded again
    assert decoded == [1]
