"""Every consumer of the log decides, for each event class of what it follows, whether it
acts on it or passes it over on purpose. A new event class (say ``Task.RetryScheduled``)
makes this test name every view and live model that must decide about it."""

from __future__ import annotations

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic, resolve_topic

from api.bootstrap import views
from domain.aggregate import HiveAggregate
from runtime.breaker import Breakers
from runtime.incidents import Incidents
from runtime.key_watch import KeyWatch
from runtime.live import LiveIndex
from runtime.live_config import LiveConfig
from runtime.mailbox import Mailbox
from runtime.models import LiveModel
from runtime.performance import LivePerformance
from runtime.scaling.book import LaunchBook

MODELS: list[type[LiveModel]] = [
    LiveIndex,
    Mailbox,
    LaunchBook,
    LivePerformance,
    LiveConfig,
    KeyWatch,
    Breakers,
    Incidents,
]


def event_classes(aggregate: type[HiveAggregate]) -> set[type]:
    """The concrete event classes of an aggregate (not the library's default ``Created``
    when the aggregate has a creation event of its own)."""
    found = {
        c
        for c in vars(aggregate).values()
        if isinstance(c, type) and issubclass(c, aggregate.Event) and c is not aggregate.Event
    }
    creations = [c for c in found if issubclass(c, Aggregate.Created)]
    if len(creations) > 1:  # the library's generated one is never recorded
        found -= {c for c in creations if c.__name__ == "Created"}
    return found


def followed(topics: tuple[str, ...]) -> set[type[HiveAggregate]]:
    """The aggregates whose events these topics are."""
    out = set()
    for topic in topics:
        owner = resolve_topic(topic.rsplit(".", 1)[0])
        assert issubclass(owner, HiveAggregate), topic
        out.add(owner)
    return out


CONSUMERS = [(m.__name__, m.topics, m.handles, m.ignores) for m in MODELS] + [
    (type(v).__name__, v.topics, v.handles, v.ignores) for v in views()
]


@pytest.mark.parametrize(("consumer", "topics", "handles", "ignores"), CONSUMERS)
def test_each_event_of_what_a_consumer_follows_is_handled_or_ignored_on_purpose(
    consumer: str, topics: tuple[str, ...], handles: frozenset[type], ignores: frozenset[type]
) -> None:
    expected = set().union(*(event_classes(a) for a in followed(topics)))
    undecided = sorted(c.__qualname__ for c in expected - handles - ignores)
    assert undecided == [], f"{consumer} does not say what it does with {undecided}"
    assert not handles & ignores
    assert handles | ignores <= expected
    # it reads what it handles (events it only ignores it may leave unread)
    assert {get_topic(c) for c in handles} <= set(topics)
