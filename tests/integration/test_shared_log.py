"""One reader of the log for a process's followers, on real PostgreSQL: each follower sees
exactly its topics, in order, once; a stretch of the log is read once for all of them; a
follower behind the window (a view rebuilt while the others run) catches up by itself."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from api.bootstrap import rebuild_views, views
from api.settings import Settings
from domain.bots import Bot
from domain.hive import Hive, TaskSpec
from domain.tasks import Task
from projections.runner import ProjectionRunner, reset_view
from store.shared_log import SharedFollower, SharedLog
from tests.integration.helpers import snapshot
from tests.integration.test_views import ALICE, busy_history
from tests.waiting import wait_for

TASK_TOPICS = tuple(get_topic(c) for c in (Task.Submitted, Task.Assigned, Task.Started))
BOT_TOPICS = (get_topic(Bot.Registered),)


@contextmanager
def running(runners: list[ProjectionRunner]) -> Iterator[None]:
    """The runners, each in a thread of its own, while the body runs."""
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in runners]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)


class CountingSource:
    """The hive's recorder, counting the pages it is asked for (a port of ours, not the DB)."""

    def __init__(self, hive: Hive) -> None:
        self.recorder: Any = hive.recorder
        self.channel_name: str = self.recorder.channel_name
        self.selects = 0

    def select_notifications(self, *args: Any, **kwargs: Any) -> Sequence[Notification]:
        self.selects += 1
        return self.recorder.select_notifications(*args, **kwargs)  # type: ignore[no-any-return]

    def max_notification_id(self) -> int | None:
        return self.recorder.max_notification_id()  # type: ignore[no-any-return]


def follow(
    follower: SharedFollower,
    start: int,
    seen: list[Notification],
    stop: threading.Event,
    threads: list[threading.Thread],
) -> Callable[[], int]:
    """Follow from ``start`` in a thread, keeping what it reads; returns where it is."""
    at = [start]

    def run() -> None:
        with follower:
            while not stop.is_set():
                page = follower.next_page(at[0])
                seen.extend(page.items)
                at[0] = page.end

    threads.append(threading.Thread(target=run, daemon=True))
    threads[-1].start()
    return lambda: at[0]


def test_each_follower_reads_its_topics_once_and_the_log_is_read_once(
    db_url: str, hive: Hive
) -> None:
    busy_history(hive, 40)  # before the followers start: one of them starts behind
    middle = hive.recorder.max_notification_id() or 0
    source = CountingSource(hive)
    log = SharedLog(source, db_url, page_size=7, poll_interval=1.0)
    wants = {"tasks": TASK_TOPICS, "bots": BOT_TOPICS, "all": ()}
    followers = {name: log.follower(topics, settle_s=0.005) for name, topics in wants.items()}
    starts = {"tasks": 0, "bots": middle, "all": middle // 2}
    seen: dict[str, list[Notification]] = {name: [] for name in wants}
    stop = threading.Event()
    threads: list[threading.Thread] = []
    at = {n: follow(followers[n], starts[n], seen[n], stop, threads) for n in wants}
    try:
        busy_history(hive, 60)
        head = hive.recorder.max_notification_id() or 0
        for name in wants:
            wait_for(lambda n=name: at[n]() >= head, what=f"follower {name} at the head")
        everything = hive.recorder.select_notifications(1, 100_000)
        for name, topics in wants.items():
            expected = [
                n.id
                for n in everything
                if n.id > starts[name] and (not topics or n.topic in topics)
            ]
            assert [n.id for n in seen[name]] == expected, name

        before = source.selects
        committed = hive.tasks.submit([TaskSpec("code")], ALICE).position
        assert committed is not None
        for name in wants:
            wait_for(lambda n=name: at[n]() >= committed, what=f"follower {name} at the commit")
        assert source.selects - before == 1  # one reading for the three of them
        assert seen["tasks"][-1].id == seen["all"][-1].id == committed
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)


def test_runners_sharing_the_log_equal_a_rebuild_even_rebuilt_while_running(
    db_url: str, hive: Hive
) -> None:
    log = SharedLog(hive.recorder, db_url, page_size=7, poll_interval=0.2, window=20)  # type: ignore[arg-type]
    runners = [
        ProjectionRunner(
            view,
            hive.recorder,
            hive.mapper.to_domain_event,
            db_url,  # type: ignore[arg-type]
            page_size=7,
            poll_interval=0.2,
            shared=log,
        )
        for view in views()
    ]
    with running(runners):
        busy_history(hive, 60)
        tasks = next(r for r in runners if r.name == "tasks")
        wait_for(lambda: tasks.position > 0, what="the tasks view to start")
        reset_view(db_url, tasks.views[0])  # a rebuild, as `apiary projections rebuild` starts one
        busy_history(hive, 60)
        head = hive.recorder.max_notification_id() or 0

        def positions() -> dict[str, int]:
            with psycopg.connect(db_url) as conn:
                return dict(conn.execute("SELECT view, position FROM projection_positions"))

        wait_for(lambda: tasks.position == head, timeout=30, what="the rebuilt view to catch up")
        for r in runners:  # the others moved on meanwhile: they flush their positions
            wait_for(lambda r=r: r.cursor == head, timeout=30, what=f"view {r.name}")
        wait_for(
            lambda: all(positions()[r.name] == head for r in runners),
            timeout=30,
            what="every position stored at the head",
        )
    kept = snapshot(db_url)
    rebuild_views(db_url, Settings())
    assert snapshot(db_url) == kept


def test_a_group_of_views_kept_by_two_runners_equals_a_rebuild_with_one_view_rebuilt(
    db_url: str, hive: Hive
) -> None:
    """The tasks feature's views kept together, by two runners at once (two engines); one
    of the group is rebuilt while the others are ahead: it alone replays from zero, and
    every view ends at the head, equal to a rebuild."""
    group = [v for v in views() if v.name in ("tasks", "stages", "performance")]
    runners = [
        ProjectionRunner(
            group,
            hive.recorder,
            hive.mapper.to_domain_event,
            db_url,  # type: ignore[arg-type]
            page_size=9,
            poll_interval=0.2,
            shared=SharedLog(hive.recorder, db_url, page_size=9, poll_interval=0.2, window=30),  # type: ignore[arg-type]
        )
        for _ in range(2)
    ]
    with running(runners):
        busy_history(hive, 60)
        first = runners[0]
        wait_for(lambda: first.position > 0, what="the group to start")
        stages = next(v for v in group if v.name == "stages")
        reset_view(db_url, stages)
        busy_history(hive, 60)
        head = hive.recorder.max_notification_id() or 0
        wait_for(
            lambda: any(r.position == head for r in runners),
            timeout=30,
            what="the group, the rebuilt view with it, at the head",
        )
        with psycopg.connect(db_url) as conn:
            stored = dict(conn.execute("SELECT view, position FROM projection_positions"))
        assert all(stored[v.name] == head for v in group)
    kept = snapshot(db_url)
    for view in group:
        rebuild_views(db_url, Settings(), view.name)
    rebuilt = snapshot(db_url)
    tables = [t for v in group for t in v.tables]
    assert {t: rebuilt[t] for t in tables} == {t: kept[t] for t in tables}
