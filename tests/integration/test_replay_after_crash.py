"""The Hive state machine on PostgreSQL, with crashes: the log alone rebuilds everything.

The machine of ``tests/unit/test_hive_state_machine.py`` runs here against a fresh database
per example, with a second node writing to the same log (its commands reach this node's
live index only through the follower, and this node's aggregate cache does not hear of
them at once), and with crashes between the steps:

* the writer crashes: its Hive is closed and a new one opened; state comes from the log only;
* a view runner crashes mid catch-up, between two pages, and another one resumes later;
* a view runner crashes inside a page (after the view's statements, before the commit);
* the live index and the mailbox restart from the views (which may be behind, each by its
  own amount);
* the views are run to the head of the log.

Every few steps, and at the end: a fresh Hive loads what the model says; the views, caught
up incrementally across all those crashes, equal a rebuild from zero (every table of every
view, ``helpers.snapshot``) and show every task, bot and message in the model's state; the
hash chain verifies and holds exactly the events recorded.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

from api.bootstrap import hive_env, rebuild_views, views
from api.settings import Settings
from domain.bots import Bot
from domain.hive import Hive
from domain.messages import Message
from domain.tasks import Task
from projections.runner import Positioned, ProjectionRunner, View, read_position
from runtime.mailbox import TOPICS as MAIL_TOPICS
from runtime.mailbox import Mailbox
from store.audit import verify_chain
from tests.integration.helpers import snapshot, view_named
from tests.pg import create_database, drop_database, unique_database_name
from tests.unit.message_model import message_fields
from tests.unit.test_hive_state_machine import EVERYTHING, HiveMachine, task_fields

SETTINGS = Settings(db_pool_size=2, projection_page=7)
CHECK_EVERY = 8  # steps between the (slow) comparisons of the views with a rebuild


class Crash(Exception):
    """A process dies here."""


class CrashingView:
    """A view whose runner dies inside its ``pages``-th transaction, after the view's writes."""

    def __init__(self, view: View, pages: int) -> None:
        self.view = view
        self.name = view.name
        self.tables = view.tables
        self.topics = view.topics
        self.pages = pages

    def apply(self, cur: psycopg.Cursor[Any], events: Sequence[Positioned]) -> None:
        self.view.apply(cur, events)
        self.pages -= 1
        if self.pages == 0:
            raise Crash(f"view {self.name} runner killed mid-page")


class CrashMachine(HiveMachine):
    def __init__(self, server_url: str, template: str) -> None:
        self.server_url = server_url
        self.db_name = unique_database_name("apiary_sm")
        self.url = create_database(server_url, self.db_name, template=template)
        super().__init__()
        self.other = self.open_hive()  # another node writing to the same log
        self.other_seen = 0  # how far the other node's follower has told its cache
        self.steps = 0

    # -- where the log lives ------------------------------------------------------------

    def hive_env(self) -> dict[str, str]:
        return hive_env(self.url, SETTINGS)

    @property
    def writer(self) -> Hive:
        return self.other if self.elsewhere else self.hive

    def nodes(self) -> list[Hive]:
        return [self.hive, self.other]

    def follow(self, page: int, pages: int = EVERYTHING) -> None:
        """The other node's follower keeps up with this one's: its cache hears as much.

        It has a position of its own: this node's index may restart from the views, ahead
        of where it was, and the other node must still hear what lies in between."""
        super().follow(page, pages)
        if self.index.position <= self.other_seen:
            return
        notes = self.hive.recorder.select_notifications(
            self.other_seen, EVERYTHING, stop=self.index.position, inclusive_of_start=False
        )
        self.other.observe([(n.id, self.hive.mapper.to_domain_event(n)) for n in notes])
        self.other_seen = self.index.position

    def where(self, data: st.DataObject) -> None:
        """Any command may come from the other node: its cache and this node's differ."""
        self.elsewhere = data.draw(st.booleans(), label="from the other node")

    def teardown(self) -> None:
        try:
            if sys.exc_info()[1] is None:  # not while a failing step is being reported
                self.views_and_log_agree_with_the_model()
        finally:
            self.hive.close()
            self.other.close()
            drop_database(self.server_url, self.db_name)

    # -- crashes --------------------------------------------------------------------------

    @rule(
        data=st.data(),
        what=st.sampled_from(
            [
                "the writer",
                "a view runner between pages",
                "a view runner inside a page",
                "the live index",
                "nothing: the views run to the head",
            ]
        ),
        view=st.sampled_from(["tasks", "fleet", "performance", "messages"]),
        page=st.integers(1, 5),
    )
    def crash(self, data: st.DataObject, what: str, view: str, page: int) -> None:
        """Something dies between two commands (one rule, so that crashes come often)."""
        if what == "the writer":
            self.crash_the_writer()
        elif what == "a view runner between pages":
            self.crash_a_view_runner_between_pages(data, view, page)
        elif what == "a view runner inside a page":
            self.crash_a_view_runner_inside_a_page(data, view, page)
        elif what == "the live index":
            self.restart_the_live_index_from_the_views()
        else:
            for v in views():
                assert self.runner(v, page).catch_up() == self.head()

    def crash_the_writer(self) -> None:
        """This node's Hive dies; a new one knows only what the log says."""
        self.hive.close()
        self.hive = self.open_hive()
        self.hive.listeners.append(self.written_here)

    def crash_a_view_runner_between_pages(self, data: st.DataObject, name: str, page: int) -> None:
        """A runner stops somewhere between its position and the head; another resumes later."""
        position, head = self.view_position(name), self.head()
        if position >= head:
            return
        until = data.draw(st.integers(position + 1, head), label="until")
        reached = self.runner(view_named(name), page).catch_up(until=until)
        assert until <= reached <= head
        assert self.view_position(name) == reached

    def crash_a_view_runner_inside_a_page(self, data: st.DataObject, name: str, page: int) -> None:
        """A runner dies in a page's transaction, after the view's writes, before the commit."""
        pages = data.draw(st.integers(1, 2), label="dies in page")
        runner = self.runner(CrashingView(view_named(name), pages), page)
        try:
            runner.catch_up()
        except Crash:
            event("a view runner died inside a page")
            # what was committed is whole pages: the view is at the end of the last one
            assert self.view_position(name) == runner.position < self.head()
        else:  # fewer pages with events of the view than it would have taken to die
            assert self.view_position(name) == self.head()

    def restart_the_live_index_from_the_views(self) -> None:
        """A node starts: its index and its mailbox are loaded from the views, wherever
        they are, the mailbox brought up to where the index's feed will start (as
        ``bootstrap.Node`` does)."""
        self.index = self.new_index()
        self.mailbox = Mailbox()
        with psycopg.connect(self.url) as conn:
            position = self.index.load(conn)
            mail_position = self.mailbox.load(conn)
        assert position <= self.head() and mail_position <= self.head()
        if mail_position < position:
            notes = self.hive.recorder.select_notifications(
                mail_position,
                EVERYTHING,
                stop=position,
                topics=MAIL_TOPICS,
                inclusive_of_start=False,
            )
            self.mailbox.apply([(n.id, self.hive.mapper.to_domain_event(n)) for n in notes])

    # -- the views and the chain ------------------------------------------------------------

    @invariant()
    def now_and_then_the_views_agree(self) -> None:
        self.steps += 1
        if self.steps % CHECK_EVERY == 0:
            self.views_and_log_agree_with_the_model()

    def views_and_log_agree_with_the_model(self) -> None:
        self.a_fresh_hive_loads_the_model()
        for view in views():  # whatever the crashes left, the runners resume from there
            self.runner(view, page=4).catch_up()
        incremental = snapshot(self.url)
        with psycopg.connect(self.url) as conn:
            tasks: dict[Any, Any] = dict(conn.execute("SELECT task_id, state FROM tasks_view"))
            bots: dict[Any, Any] = dict(conn.execute("SELECT bot_id, state FROM fleet_view"))
            messages = {
                row[0]: row[1:]
                for row in conn.execute(
                    "SELECT message_id, state, bot_id, attempt, visible_until, dead_reason,"
                    " conversation, conversation_seq, after_id, sent_at, expires_at"
                    " FROM messages_view"
                )
            }
        assert tasks == {i: str(t.state) for i, t in self.tasks.items()}
        assert bots == {i: str(b.state) for i, b in self.bots.items()}
        assert messages == {
            i: (
                str(m.state),
                m.bot_id,
                m.attempt,
                m.visible_until,
                m.dead_reason,
                m.conversation,
                m.seq,
                m.after,
                m.sent_at,
                m.expires_at,
            )
            for i, m in self.messages.items()
        }
        rebuild_views(self.url, SETTINGS)
        assert snapshot(self.url) == incremental, "views caught up across crashes != a rebuild"
        chain = verify_chain(self.url)
        assert chain.ok, chain.reason
        assert chain.count == self.events

    def a_fresh_hive_loads_the_model(self) -> None:
        fresh = self.open_hive()
        try:
            tasks = fresh.load_many(Task, self.tasks)
            assert {i: task_fields(t) for i, t in tasks.items()} == {
                i: t.fields() for i, t in self.tasks.items()
            }
            bots = fresh.load_many(Bot, self.bots)
            assert {i: b.state for i, b in bots.items()} == {
                i: b.state for i, b in self.bots.items()
            }
            messages = fresh.load_many(Message, self.messages)
            assert {i: message_fields(m) for i, m in messages.items()} == {
                i: m.fields() for i, m in self.messages.items()
            }
        finally:
            fresh.close()

    # -- helpers ----------------------------------------------------------------------------

    def runner(self, view: View, page: int) -> ProjectionRunner:
        return ProjectionRunner(
            view,
            self.hive.recorder,  # type: ignore[arg-type]  # a HiveRecorder: it has a channel
            self.hive.mapper.to_domain_event,
            self.url,
            page_size=page,
        )

    def view_position(self, name: str) -> int:
        with psycopg.connect(self.url) as conn, conn.transaction():
            return read_position(conn, name)


@pytest.mark.timeout(900)  # a failure is shrunk for up to five minutes
def test_replay_after_crashes_equals_the_model(pg_server_url: str, migrated_template: str) -> None:
    run_state_machine_as_test(
        lambda: CrashMachine(pg_server_url, migrated_template),  # type: ignore[arg-type]
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
