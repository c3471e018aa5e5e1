"""The Hive against a reference model: random sequences of commands, good, stale and wrong.

A hypothesis state machine drives the Hive (on the in-memory recorder) with batches of
submissions (idempotency keys drawn from a small set, so repeats happen), registrations,
dispatch decisions (some of them stale), bots' reports with the right token, a stale one
or from the wrong bot, cancellations, lost and deregistered bots; and with messages
(``tests/unit/message_model.py``): sent to a bot, a capability or a pool (fanned out), in
conversations or not, handed out by claims, acknowledged (the latest attempt, mostly; a
stale one or by the wrong bot, sometimes), re-routed when their bot is gone and
dead-lettered past their TTL, while a fake clock moves (visibility deadlines run out).
Tasks retry (issue 12): the hive has a retry policy per type (``POLICIES``), submissions
narrow it; failures come with a kind and retryability, bots are lost before and after a
start, the engine times attempts out, operators re-drive tasks (by hand, or in bulk) and
cancel retries waiting out their backoff. A small model predicts every outcome: the new
state of each task (its attempt, series, retry time, error kind and dead reason too), bot
and message, or the exact domain error (and then nothing may have been persisted). After
every step:

* the log (its events decoded and applied with ``mutate``) holds exactly the model's
  tasks, bots, messages and conversations, and exactly as many events as the accepted
  commands recorded;
* no message was handed out while the one before it in its conversation was unfinished;
* each task's attempts, as ``domain/attempts.py`` tells them from its events, are the
  model's; in each series they are numbered 1, 2, ... once each and capped by the policy
  (a bot lost before the start made none), and a dead letter used them all;
* fencing tokens never decrease and a task is held by at most one bot;
* what the Hive loads equals that replay of the log, and so does what it has cached;
* a ``LiveIndex`` fed the way a node feeds it (its own process's writes at once, through a
  Hive listener; everything through the follower's pages, which sometimes lag, while other
  nodes write) agrees with the model: open tasks, holders, pending order, orphans, the
  retries held back until their time; and the timeouts loop finds, from its deadlines,
  exactly the attempts the model says ran past their timeout.

``tests/integration/test_replay_after_crash.py`` runs the same machine on PostgreSQL, with
crashes. Run with ``--hypothesis-show-statistics`` to see how often each outcome happens.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast
from uuid import UUID

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from domain.aggregate import HiveAggregate
from domain.attempts import attempts
from domain.bots import Bot, BotState
from domain.cause import Cause
from domain.errors import (
    HiveError,
    InvalidInput,
    InvalidTransition,
    NotFound,
    NotYourTask,
    StaleFencingToken,
    Undeliverable,
)
from domain.hive import Committed, Hive, MessageSpec, Report, TaskSpec
from domain.messages import MAX_TTL_S, Conversation, Message, MessageState, conversation_id
from domain.policies.aging import CEILING, Aging
from domain.policies.explanation import RoundInputs, explain
from domain.policies.retry import (
    MAX_ATTEMPTS,
    Retry,
    RetryLimits,
    RetryPolicy,
    decide_retry,
    jitter_fraction,
)
from domain.policies.routing import POLICY, Assignment
from domain.rounds import DispatchRound
from domain.tasks import NO_RETRY, REDRIVABLE, Task, TaskState
from runtime.live import TOPICS as LIVE_TOPICS
from runtime.live import LiveIndex
from runtime.mailbox import TOPICS as MAIL_TOPICS
from runtime.mailbox import Mailbox
from tests.clock import FakeClock
from tests.unit.message_model import (
    OPEN,
    ModelMessage,
    acknowledge,
    address,
    deliverable,
    expire_past_ttl,
    hand_out,
    message_fields,
    reroute,
)

T = TypeVar("T")

ALICE, BOB = Cause("alice", "req-a"), Cause("bob", "req-b")
DISPATCHER = Cause.engine("dispatcher", "round")
REAPER = Cause.engine("reaper", "round")
POSTMAN = Cause.engine("postman", "round")
TIMEOUTS = Cause.engine("timeouts", "round")
FEED_TOPICS = (*LIVE_TOPICS, *MAIL_TOPICS)  # of what a node's follower reads, what is here
TYPES = ("code", "writing", "math")
KEYS = ("k1", "k2", "k3")
GHOST = UUID(int=0xDEAD_BEEF)  # an id nothing in the hive has: tasks and bots alike
EVERYTHING = 10**9  # a page size that reads the whole log
NOT_RETRIED = "bad-input"  # an error kind no policy here retries

# The retry policy in force per type (``hive.tasks.policies``): backoffs of about a second
# to a minute (``time_passes`` moves past them, or not yet), timeouts that run out.
POLICIES = {
    "code": RetryPolicy(
        max_attempts=3,
        initial_backoff_s=1.0,
        max_backoff_s=3.0,
        jitter=0.5,
        non_retryable=frozenset({NOT_RETRIED}),
    ),
    "writing": RetryPolicy(
        max_attempts=2,
        initial_backoff_s=5.0,
        jitter=0.1,
        non_retryable=frozenset({NOT_RETRIED, "timeout"}),  # a timeout fails it for good
        timeout_s=30.0,
    ),
    "math": RetryPolicy(
        max_attempts=4,
        initial_backoff_s=0.5,
        multiplier=3.0,
        max_backoff_s=10.0,
        jitter=0.2,
        non_retryable=frozenset({NOT_RETRIED}),
        timeout_s=10.0,
    ),
}


def policy_of(task_type: str) -> RetryPolicy:
    return POLICIES.get(task_type, NO_RETRY)


def timeout_of(task_type: str) -> float | None:
    return policy_of(task_type).timeout_s


HELD = frozenset({TaskState.ASSIGNED, TaskState.RUNNING})
FINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.DEAD})
TASK_FIELDS = (
    "type",
    "priority",
    "capabilities",
    "payload",
    "idempotency_key",
    "submitted_by",
    "retry",
    "state",
    "bot_id",
    "fencing_token",
    "assigned_at",
    "started_at",
    "result",
    "error",
    "error_kind",
    "dead_reason",
    "not_before",
    "attempt",
    "series",
)  # and ``unroutable``: an UnroutableTasks record's, checked through the live index


# -- the reference model ----------------------------------------------------------------

# An attempt as ``domain/attempts.py`` tells it: (series, attempt, bot, outcome, error kind).
Tried = tuple[int, int, UUID, str, str | None]


@dataclass(frozen=True)
class ModelTask:
    id: UUID
    type: str
    priority: int
    capabilities: list[str]
    payload: str
    idempotency_key: str | None
    submitted_by: str
    seq: int  # log position of its submission, or of its latest re-drive: its place in line
    since: float = 0.0  # waiting since (seconds since the epoch): its age, for aging
    retry: dict[str, Any] | None = None  # the submission's narrowing of its type's policy
    state: TaskState = TaskState.PENDING
    bot_id: UUID | None = None
    fencing_token: int = 0
    assigned_at: datetime | None = None
    started_at: datetime | None = None  # the current attempt's start, when reported
    result: str | None = None
    error: str | None = None
    error_kind: str | None = None
    dead_reason: str | None = None
    not_before: datetime | None = None  # not offered to a bot before then (a retry's time)
    attempt: int = 1
    series: int = 1
    reported: tuple[UUID, int] | None = None  # a failure its bot may report again: a no-op
    tried: tuple[Tried, ...] = ()  # the attempts that ended
    unroutable: str | None = None

    def fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in TASK_FIELDS}

    @property
    def policy(self) -> RetryPolicy:
        """Its type's policy, as its submission narrowed it (fewer attempts, a shorter
        timeout: never more)."""
        policy, asked = policy_of(self.type), self.retry or {}
        timeouts = [t for t in (policy.timeout_s, asked.get("timeout_s")) if t is not None]
        return replace(
            policy,
            max_attempts=min(policy.max_attempts, asked.get("max_attempts", MAX_ATTEMPTS)),
            timeout_s=min(timeouts) if timeouts else None,
        )

    def deadline(self) -> datetime | None:
        """When its attempt under way times out (from its start, else its assignment)."""
        began = self.started_at or self.assigned_at
        timeout = self.policy.timeout_s
        if self.state not in HELD or began is None or timeout is None:
            return None
        return began + timedelta(seconds=timeout)

    def due(self, now: datetime) -> bool:
        """Pending and offered to bots now (not waiting out a backoff)."""
        return self.state is TaskState.PENDING and (
            self.not_before is None or self.not_before <= now
        )

    def attempts(self) -> list[Tried]:
        """Its attempts, the one under way included (``running``)."""
        if self.state not in HELD or self.bot_id is None:
            return list(self.tried)
        return [*self.tried, (self.series, self.attempt, self.bot_id, "running", None)]


def task_fields(task: Task) -> dict[str, Any]:
    return {k: getattr(task, k) for k in TASK_FIELDS}


@dataclass(frozen=True)
class ModelBot:
    name: str
    capabilities: list[str]
    max_concurrency: int
    state: BotState = BotState.READY


M = TypeVar("M", ModelTask, ModelMessage)  # what the model holds of an aggregate

# What a command does to one task: the task afterwards, or the error it must be refused with.
Outcome = ModelTask | type[HiveError]
Rule = Callable[[ModelTask], Outcome]


def start(bot_id: UUID, token: int, now: datetime) -> Rule:
    def decide(t: ModelTask) -> Outcome:
        if t.bot_id != bot_id:
            return NotYourTask
        if token != t.fencing_token:
            return StaleFencingToken
        if t.state is TaskState.RUNNING:
            return t  # the same start reported again changes nothing
        if t.state is not TaskState.ASSIGNED:
            return InvalidTransition
        return replace(t, state=TaskState.RUNNING, started_at=now)

    return decide


def finish(bot_id: UUID, report: Report, now: datetime) -> Rule:
    """A bot's success or failure. A failure ends the attempt and the task's policy decides
    (``attempt_ended``); the same failure reported again by the same holder changes
    nothing, even once the task was retried or handed to another bot."""
    token, error = report.fencing_token, report.error

    def decide(t: ModelTask) -> Outcome:
        if error is not None and t.reported == (bot_id, token):
            return t
        if t.bot_id != bot_id:
            return NotYourTask
        if token != t.fencing_token:
            return StaleFencingToken
        if error is None and t.state is TaskState.SUCCEEDED:
            return t  # the same outcome reported again changes nothing
        unstarted = t.state is TaskState.ASSIGNED and report.ran_s is not None  # says its start
        if t.state is not TaskState.RUNNING and not unstarted:
            return InvalidTransition
        if error is not None:
            kind = report.error_kind
            if not text_ok(error) or (kind is not None and not short_name_ok(kind)):
                return InvalidInput
            return attempt_ended(t, "failed", error, kind, report.retryable, now)
        text = report.result or "null"
        if not json_ok(text):
            return InvalidInput
        done = (t.series, t.attempt, bot_id, "succeeded", None)
        return replace(t, state=TaskState.SUCCEEDED, result=text, tried=(*t.tried, done))

    return decide


def attempt_ended(
    t: ModelTask, how: str, error: str, kind: str | None, retryable: bool, now: datetime
) -> ModelTask:
    """The attempt under way ended without success (``how``: failed, lost, timed-out): tried
    again after its backoff, dead-lettered after its last attempt, or failed for good when
    the failure is not retryable. The decision is ``decide_retry``'s (its own properties
    prove it); the model gives it the task's narrowed policy, attempt and series."""
    bot_id = t.bot_id
    assert bot_id is not None
    decision = decide_retry(
        t.policy,
        attempt=t.attempt,
        error_kind=kind,
        retryable=retryable,
        now=now,
        draw=jitter_fraction(t.id, t.series, t.attempt),
    )
    t = replace(t, error=error, error_kind=kind)
    reported = (bot_id, t.fencing_token)
    if isinstance(decision, Retry):
        event(f"attempt {how}: retried")
        assert decision.at > now
        return replace(
            t,
            state=TaskState.PENDING,
            bot_id=None,
            started_at=None,
            not_before=decision.at,
            since=decision.at.timestamp(),
            attempt=t.attempt + 1,
            reported=reported if how == "failed" else None,
            tried=(*t.tried, (t.series, t.attempt, bot_id, how, kind)),
        )
    if decision.dead:
        event(f"attempt {how}: dead-lettered")
        assert t.attempt == t.policy.max_attempts
        return replace(
            t,
            state=TaskState.DEAD,
            dead_reason=decision.reason,
            reported=reported if how == "failed" else None,
            tried=(*t.tried, (t.series, t.attempt, bot_id, how, kind)),
        )
    event(f"attempt {how}: failed for good")
    return replace(
        t,
        state=TaskState.FAILED,
        reported=reported,
        tried=(*t.tried, (t.series, t.attempt, bot_id, "failed", kind)),  # (no outcome kept)
    )


def cancel(reason: str) -> Rule:
    def decide(t: ModelTask) -> Outcome:
        if t.state in FINAL:
            return InvalidTransition
        if not text_ok(reason):
            return InvalidInput
        if t.not_before is not None and t.state is TaskState.PENDING:
            event("cancel: a task waiting out its backoff")
        tried = t.tried
        if t.state in HELD and t.bot_id is not None:
            tried = (*tried, (t.series, t.attempt, t.bot_id, "cancelled", None))
        return replace(t, state=TaskState.CANCELLED, error=reason, tried=tried)

    return decide


def redrive(reason: str, now: datetime, *, strict: bool) -> Rule:
    """An operator sends a failed, dead or cancelled task round again: a new series of
    attempts, pending at once. ``strict``: one named by hand must be re-drivable; a bulk
    re-drive (``redrive_found``) passes over the others."""

    def decide(t: ModelTask) -> Outcome:
        if t.state not in REDRIVABLE:
            return InvalidTransition if strict else t
        if not text_ok(reason):
            return InvalidInput
        event(f"re-drive a {t.state} task")
        return replace(
            t,
            state=TaskState.PENDING,
            bot_id=None,
            started_at=None,
            not_before=None,
            result=None,
            error=None,
            error_kind=None,
            dead_reason=None,
            attempt=1,
            series=t.series + 1,
            since=now.timestamp(),
            unroutable=None,  # a new entry in its queue: not flagged
        )

    return decide


def time_out(now: datetime) -> Rule:
    """The engine ends an attempt past its deadline; any other task is left alone."""

    def decide(t: ModelTask) -> Outcome:
        deadline = t.deadline()
        if deadline is None or now < deadline:
            return t
        error = f"ran past its timeout of {t.policy.timeout_s:g} s"
        return attempt_ended(t, "timed-out", error, "timeout", True, now)

    return decide


def routing_round(pairs: list[tuple[UUID, UUID]]) -> list[Assignment]:
    """The choices of one routing round: every task the same type, each bot a candidate
    with its inputs and base score; each choice ranks its bot first, then another."""
    bots = list(dict.fromkeys(b for _, b in pairs))
    shared = RoundInputs(POLICY)
    shared.groups.append(
        {
            "type": "code",
            "required": ["code"],
            "w_free": 0.3,
            "bots": [{"bot": str(b), "capacity": 2, "samples": 0} for b in bots],
            "base": [0.7 - i / 10 for i in range(len(bots))],
        }
    )
    chosen = []
    for n, (task_id, bot_id) in enumerate(pairs):
        i = bots.index(bot_id)
        ranked = [[i, 2], *([[(i + 1) % len(bots), 1]] if len(bots) > 1 else [])]
        choice = {"group": 0, "effective_priority": 5.0, "waited_s": n / 8, "bots": ranked}
        chosen.append(Assignment(task_id, bot_id, choice, shared))
    return chosen


def assign(bot_id: UUID, now: datetime) -> Rule:
    def decide(t: ModelTask) -> Outcome:
        if t.state is not TaskState.PENDING:
            return t  # a stale choice: left alone
        if t.attempt > 1 and t.not_before is not None:
            event("assign: a retry")
        return replace(
            t,
            state=TaskState.ASSIGNED,
            bot_id=bot_id,
            fencing_token=t.fencing_token + 1,
            assigned_at=now,
            unroutable=None,
        )

    return decide


def flag(reason: str) -> Rule:
    def decide(t: ModelTask) -> Outcome:
        if t.state is not TaskState.PENDING or t.unroutable is not None:
            return t  # flagged once, until an assignment clears it
        return replace(t, unroutable=reason) if text_ok(reason) else InvalidInput

    return decide


def expire(bot_id: UUID, reason: str, now: datetime) -> Rule:
    """A bot is gone: before its start was reported the task is pending again as it was
    (no attempt, as far as the hive knows); after, the attempt ended (``lost``)."""

    def decide(t: ModelTask) -> Outcome:
        if t.state not in HELD or t.bot_id != bot_id:
            return t  # that bot does not hold it (any more): nothing to take back
        if t.state is TaskState.ASSIGNED:
            return replace(t, state=TaskState.PENDING, bot_id=None)
        return attempt_ended(t, "lost", reason, "lost", True, now)

    return decide


def text_ok(text: str) -> bool:
    return "\x00" not in text and len(text) <= 4096


def json_ok(text: str) -> bool:
    """No NUL in any text of the JSON (decoded: an escaped backslash before "u0000" is fine)."""
    return not _holds_nul(json.loads(text))


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def short_name_ok(name: str) -> bool:
    return (
        1 <= len(name) <= 64
        and "a" <= name[0] <= "z"
        and all("a" <= c <= "z" or "0" <= c <= "9" or c in "_.-" for c in name)
    )


def spec_ok(spec: TaskSpec) -> bool:
    capabilities = spec.capabilities or [spec.type]
    return (
        short_name_ok(spec.type)
        and 0 <= spec.priority <= 9
        and json_ok(spec.payload)
        and 1 <= len(capabilities) <= 32
        and all(short_name_ok(c) for c in capabilities)
        and limits_ok(spec.retry, policy_of(spec.type))
    )


def limits_ok(limits: RetryLimits | None, policy: RetryPolicy) -> bool:
    """A submission may narrow its type's policy, never widen it."""
    if limits is None:
        return True
    attempts, timeout = limits.max_attempts, limits.timeout_s
    return (attempts is None or 1 <= attempts <= policy.max_attempts) and (
        timeout is None or 0 < timeout <= (policy.timeout_s or 7 * 24 * 3600)
    )


def message_spec_ok(spec: MessageSpec) -> bool:
    return (
        (spec.to_capability is None or short_name_ok(spec.to_capability))
        and (spec.to_pool is None or short_name_ok(spec.to_pool))
        and (spec.conversation is None or short_name_ok(spec.conversation))
        and 1 <= spec.ttl_s <= MAX_TTL_S
        and json_ok(spec.body)
    )


def urgency(t: ModelTask, aging: Aging, now: float) -> tuple[float, float, int]:
    """Most urgent first: effective priority (capped), then the oldest (aging.py)."""
    effective = min(t.priority + max(now - t.since, 0.0) / aging.step_s, CEILING)
    return (-effective, t.since, t.seq)


# -- strategies -------------------------------------------------------------------------


def rarely(common: st.SearchStrategy[T], rare: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``rare`` one time in ten; shrinks towards ``common``."""
    return st.integers(0, 9).flatmap(lambda n: rare if n == 9 else common)


json_values = st.one_of(
    st.none(),
    st.integers(-(2**31), 2**31),
    st.text(max_size=6),  # NUL (refused) included
    st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=2),
)
json_texts = json_values.map(lambda v: json.dumps(v, sort_keys=True, separators=(",", ":")))

# A submission's narrowing of its type's retry policy: mostly within it, rarely wider.
limits = st.builds(
    RetryLimits,
    max_attempts=st.none() | rarely(st.integers(1, 2), st.just(4)),
    timeout_s=st.none() | rarely(st.sampled_from([5.0, 8.0]), st.just(60.0)),
)

specs = st.builds(
    TaskSpec,
    type=st.sampled_from(TYPES),
    priority=st.integers(0, 9),
    capabilities=st.none() | st.lists(st.sampled_from(TYPES), min_size=1, max_size=2),
    payload=json_texts,
    idempotency_key=st.none() | st.sampled_from(KEYS),
    retry=st.integers(0, 3).flatmap(lambda n: limits if n == 0 else st.none()),
)

# One way each of breaking a submission's rules, with or without an idempotency key.
bad_specs = st.builds(
    replace,
    st.one_of(
        st.builds(TaskSpec, type=st.sampled_from(["Code", "9lives", "", "a b"])),
        st.builds(TaskSpec, type=st.just("code"), priority=st.sampled_from([-1, 10])),
        st.builds(TaskSpec, type=st.just("code"), capabilities=st.just(["GPU"])),
        st.builds(TaskSpec, type=st.just("code"), payload=st.just('{"nul":"\\u0000"}')),
        st.builds(
            TaskSpec,
            type=st.just("writing"),
            retry=st.sampled_from(
                [
                    RetryLimits(max_attempts=0),
                    RetryLimits(max_attempts=3),
                    RetryLimits(timeout_s=0.0),
                ]
            ),
        ),
    ),
    idempotency_key=st.none() | st.sampled_from(KEYS),
)

reasons = rarely(st.text(max_size=12), st.sampled_from(["has a \x00 in it", "x" * 4097]))
errors = rarely(st.text(min_size=1, max_size=12), st.sampled_from(["\x00", "x" * 4097]))
results = rarely(st.none() | json_texts, st.just('"\\u0000"'))
error_kinds = rarely(st.sampled_from([None, "flaky", NOT_RETRIED]), st.just("Not A Kind"))
token_offsets = st.sampled_from([0] * 14 + [-1, 1])  # mostly right, sometimes stale
conversations = rarely(st.sampled_from([None, "c1", "c1", "c2"]), st.just("Not A Name"))
ttls = rarely(st.sampled_from([5, 60, 3600]), st.sampled_from([0, MAX_TTL_S + 1]))


# -- the machine ------------------------------------------------------------------------


class HiveMachine(RuleBasedStateMachine):
    """Commands against the Hive and the model; a subclass chooses where the log lives."""

    def __init__(self) -> None:
        super().__init__()
        self.ids = itertools.count(1)
        self.secrets = itertools.count(1)
        self.clock = FakeClock()  # moved by ``time_passes`` only, the same for every node
        self.hive = self.open_hive()
        self.tasks: dict[UUID, ModelTask] = {}
        self.messages: dict[UUID, ModelMessage] = {}
        self.conversations: dict[tuple[str, str], tuple[UUID, int]] = {}  # -> (last, seq)
        self.bots: dict[UUID, ModelBot] = {}
        self.keys: list[UUID] = []  # the API keys issued to bots
        self.unroutable: dict[UUID, list[UUID]] = {}  # records of unroutable tasks -> tasks
        self.rounds: dict[UUID, Any] = {}  # records of dispatch rounds -> their events
        self.keyed: dict[tuple[str, str], UUID] = {}  # (actor, idempotency key) -> task
        self.events = 0  # how many events the log must hold
        self.tokens: dict[UUID, int] = {}  # the highest fencing token seen, per task
        self.index = self.new_index()
        self.mailbox = Mailbox()  # fed like the index: the Hive's listener, the follower
        self.sent: dict[UUID, int] = {}  # message -> log position of its sending
        self.lagging = False  # the index's follower is behind: compare once it caught up
        self.elsewhere = False  # commands come from another process: not applied at once
        self.hive.listeners.append(self.written_here)
        self.replayed: dict[UUID, Any] = {}
        self.histories: dict[UUID, list[Any]] = {}  # each task's events, as the log has them
        self.replayed_to = 0
        self.replayed_events = 0

    # -- where the log lives ------------------------------------------------------------

    def hive_env(self) -> dict[str, str]:
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}

    def open_hive(self) -> Hive:
        """Deterministic ids and secrets, so that hypothesis can replay an example; the
        retry policies in force, as a node's configuration sets them."""
        hive = Hive(
            env=self.hive_env(),
            clock=self.clock,
            new_id=lambda: UUID(int=next(self.ids)),
            new_secret=lambda: f"secret-{next(self.secrets)}",
        )
        hive.tasks.policies = policy_of
        return hive

    def new_index(self) -> LiveIndex:
        """A node's live index: on the hive's clock, keeping the deadlines of the attempts
        that have a timeout (the timeouts loop's ``configure``)."""
        index = LiveIndex(clock=self.clock)
        index.renew_deadlines(timeout_of)
        return index

    def teardown(self) -> None:
        self.hive.close()

    # -- choosing -----------------------------------------------------------------------

    def pick(
        self, data: st.DataObject, preferred: Iterable[UUID], anything: Iterable[UUID], label: str
    ) -> UUID:
        """Mostly one of ``preferred``; sometimes anything; rarely an id nothing has."""
        first, rest = list(preferred), list(anything) or [GHOST]
        how = data.draw(st.integers(0, 31), label=f"{label}: 0-29 preferred, 30 any, 31 ghost")
        pool = first if how <= 29 and first else rest if how <= 30 else [GHOST]
        return data.draw(st.sampled_from(pool), label=label)

    def having(self, *states: TaskState, bot_id: UUID | None = None) -> list[UUID]:
        return [
            i
            for i, t in self.tasks.items()
            if t.state in states and (bot_id is None or t.bot_id == bot_id)
        ]

    def live_bots(self) -> list[UUID]:
        return [i for i, b in self.bots.items() if b.state is BotState.READY]

    def holders(self, *states: TaskState) -> list[UUID]:
        bots = (t.bot_id for t in self.tasks.values() if t.state in states)
        return list(dict.fromkeys(b for b in bots if b is not None))

    # -- checking a command -------------------------------------------------------------

    def head(self) -> int:
        return self.hive.recorder.max_notification_id() or 0

    def refused(self, what: str, error: type[HiveError], command: Callable[[], object]) -> None:
        """The command raises exactly ``error`` and leaves the log as it was."""
        event(f"{what}: refused with {error.__name__}")
        before = self.head()
        with pytest.raises(HiveError) as raised:
            command()
        assert type(raised.value) is error, f"expected {error.__name__}, got {raised.value!r}"
        assert self.head() == before, "a refused command persisted events"

    def accepted(self, what: str, committed: Committed[Any], events: int) -> None:
        event(f"{what}: accepted, {'changes' if events else 'no change'}")
        assert len(committed.recorded) == events
        positions = [p for p, _ in committed.recorded]
        assert positions == sorted(positions)
        assert committed.position == (positions[-1] if positions else None)
        if positions:
            assert committed.position == self.head()
        self.events += events

    def change_tasks(
        self,
        what: str,
        items: Sequence[tuple[UUID, Rule]],
        command: Callable[[], Committed[Task]],
    ) -> None:
        """Predict a batch command on tasks (the last item per task wins), run it, check it."""
        self.change(what, self.tasks, items, command)

    def change(
        self,
        what: str,
        model: dict[UUID, M],
        items: Sequence[tuple[UUID, Callable[[M], M | type[HiveError]]]],
        command: Callable[[], Committed[Any]],
    ) -> None:
        """Predict a batch command on one kind of aggregate (the last item per id wins),
        run it, check it."""
        by_id = dict(items)
        if any(i not in model for i in by_id):
            self.refused(what, NotFound, command)
            return
        after: dict[UUID, M] = {}
        for i, decide in by_id.items():
            outcome = decide(model[i])
            if isinstance(outcome, type):
                self.refused(what, outcome, command)
                return
            after[i] = outcome
        changed = {i for i, a in after.items() if a != model[i]}
        committed = command()
        assert {a.id for a in committed.items} == changed
        self.accepted(what, committed, len(changed))
        model.update(after)

    @property
    def writer(self) -> Hive:
        """The Hive a command goes to (on PostgreSQL, another node's when ``elsewhere``)."""
        return self.hive

    def nodes(self) -> list[Hive]:
        return [self.hive]

    def written_here(self, recorded: list[tuple[int, Any]]) -> None:
        """A node's live index hears of its own process's writes at once (a Hive listener)."""
        if not self.elsewhere:
            self.index.apply(recorded)
            self.mailbox.apply(recorded)

    def where(self, data: st.DataObject) -> None:
        """While the index lags, a command may come from another node: its follower only
        will tell the index."""
        self.elsewhere = self.lagging and data.draw(st.booleans(), label="from another node")

    # -- commands -----------------------------------------------------------------------

    @initialize(
        data=st.data(),
        bots=st.integers(1, 2),
        batch=st.lists(specs, min_size=1, max_size=5),
    )
    def a_hive_with_bots_and_tasks(
        self, data: st.DataObject, bots: int, batch: list[TaskSpec]
    ) -> None:
        """Something to work on in every example, even when hypothesis turns rules off."""
        for n in range(bots):
            self.register_bot(f"b{n}", list(TYPES), 2)
        self.submit(data, ALICE, batch, None)

    @rule(
        data=st.data(),
        actor=st.sampled_from([ALICE, BOB]),
        batch=st.lists(specs, min_size=1, max_size=5),
        bad=rarely(st.none(), bad_specs),
    )
    def submit(
        self, data: st.DataObject, actor: Cause, batch: list[TaskSpec], bad: TaskSpec | None
    ) -> None:
        """A batch of tasks; rarely with one item that breaks a rule (the batch is refused)."""
        self.where(data)
        if bad is not None:
            assert not spec_ok(bad)
            at = data.draw(st.integers(0, len(batch)), label="the bad item's index")
            batch = [*batch[:at], bad, *batch[at:]]
        if not all(spec_ok(s) for s in batch):
            self.refused("submit", InvalidInput, lambda: self.writer.tasks.submit(batch, actor))
            return
        committed = self.writer.tasks.submit(batch, actor)
        assert len(committed.items) == len(batch)
        submitted = {e.originator_id: p for p, e in committed.recorded}
        times = {e.originator_id: e.timestamp.timestamp() for _, e in committed.recorded}
        new: set[UUID] = set()
        for spec, item in zip(batch, committed.items, strict=True):
            task_id = item.task.id
            key = (actor.actor, spec.idempotency_key) if spec.idempotency_key else None
            if key is not None and key in self.keyed:
                assert task_id == self.keyed[key], "a repeated key made a new task"
                assert item.duplicate, "a repeated key is not flagged as a duplicate"
            else:
                assert not item.duplicate
                assert task_id not in self.tasks
                assert task_id in submitted, "a new task is reported but was not recorded"
                new.add(task_id)
                self.tasks[task_id] = ModelTask(
                    id=task_id,
                    type=spec.type,
                    priority=spec.priority,
                    capabilities=sorted(set(spec.capabilities or [spec.type])),
                    payload=spec.payload,
                    idempotency_key=spec.idempotency_key,
                    submitted_by=actor.actor,
                    seq=submitted[task_id],
                    since=times[task_id],
                    retry=None if spec.retry is None else spec.retry.as_dict() or None,
                )
                if key is not None:
                    self.keyed[key] = task_id
            assert task_fields(item.task) == self.tasks[task_id].fields()
        assert submitted.keys() == new
        self.accepted("submit", committed, len(new))

    @rule(
        name=st.sampled_from(["b1", "b2", "b3"]),
        capabilities=st.lists(st.sampled_from(TYPES), min_size=1, max_size=3),
        max_concurrency=st.integers(1, 3),
    )
    def register_bot(self, name: str, capabilities: list[str], max_concurrency: int) -> None:
        self.elsewhere = False
        before = self.head()
        bot, issued, position = self.hive.fleet.register(
            name=name,
            capabilities=capabilities,
            max_concurrency=max_concurrency,
            version_label="v1",
            cause=ALICE,
        )
        event("register bot")
        assert bot.id not in self.bots and issued.key.bot_id == bot.id
        assert position is not None and position == self.head() > before
        self.bots[bot.id] = ModelBot(name, sorted(set(capabilities)), max_concurrency)
        self.keys.append(issued.key.id)
        self.events += 2  # the bot and its key

    @precondition(lambda self: self.tasks and self.bots)
    @rule(data=st.data(), n=st.integers(1, 4))
    def work(self, data: st.DataObject, n: int) -> None:
        """Work goes on: the dispatcher assigns, bots start tasks or finish them."""
        self.where(data)
        moves = ["assign"]
        if self.having(TaskState.ASSIGNED):
            moves.append("start")
        if self.having(TaskState.RUNNING):
            moves.append("finish")
        move = data.draw(st.sampled_from(moves), label="work")
        if move == "assign":
            self.assign(data, n)
        elif move == "start":
            self.start(data, n)
        else:
            self.finish(data, n)

    def assign(self, data: st.DataObject, n: int) -> None:
        """A round of dispatch: mostly tasks it is offered (pending, not waiting out a
        backoff) and live bots; sometimes stale choices."""
        now = self.clock()
        due = [i for i, t in self.tasks.items() if t.due(now)]
        pairs = [
            (
                self.pick(data, due, self.tasks, "task"),
                self.pick(data, self.live_bots(), self.bots, "bot"),
            )
            for _ in range(n)
        ]
        self.assign_pairs(data, pairs)

    def assign_pairs(self, data: st.DataObject, pairs: list[tuple[UUID, UUID]]) -> None:
        """Assign each task to its bot: in one routing round, or one by one."""
        if data.draw(st.booleans(), label="one routing round"):
            chosen = routing_round(pairs)
        else:
            chosen = [
                Assignment(t, b, {"policy": "test", "n": i}) for i, (t, b) in enumerate(pairs)
            ]
        now = self.clock()
        self.change_tasks(
            "assign", [(t, assign(b, now)) for t, b in pairs], lambda: self.assigned(chosen)
        )

    def assigned(self, chosen: list[Assignment]) -> Committed[Task]:
        """Assign, and check the round record: one for a round that assigned two tasks or
        more, ahead of them, and every assignment explained as it was chosen. What the
        round record adds to the log is counted here; the rest is checked as any change."""
        committed = self.writer.tasks.assign(chosen, DISPATCHER)
        made = {
            e.originator_id: e
            for _, e in committed.recorded
            if isinstance(e, DispatchRound.Decided)
        }
        assigned = [e for _, e in committed.recorded if isinstance(e, Task.Assigned)]
        routed = chosen[0].shared is not None
        assert len(made) == (1 if routed and len(assigned) >= 2 else 0)
        if made:
            assert committed.recorded[0][1] in made.values(), "the round comes first"
        last = {a.task_id: a for a in chosen}
        for e in assigned:
            record = made.get(e.round_id)
            why = e.why if record is None else explain(record.policy, record.groups, e.why)
            assert why == last[e.originator_id].why
        event(f"assign: {len(made)} round record(s)")
        self.rounds.update(made)
        self.events += len(made)
        rest = [(p, e) for p, e in committed.recorded if e.originator_id not in made]
        return Committed.of(committed.items, rest)

    def start(self, data: st.DataObject, n: int) -> None:
        """A bot starts tasks: its own with the right token, mostly; stale or not its own."""
        bot_id = self.pick(data, self.holders(TaskState.ASSIGNED), self.bots, "bot")
        reports = []
        for _ in range(n):
            mine = self.mine(data, bot_id, TaskState.ASSIGNED)
            task_id = self.pick(data, mine, self.tasks, "task")
            reports.append(Report(task_id, self.token(data, task_id)))
        self.report_start(bot_id, reports)

    def report_start(self, bot_id: UUID, reports: list[Report]) -> None:
        cause = Cause(f"bot:{bot_id}", "start")
        now = self.clock()
        self.change_tasks(
            "start",
            [(r.task_id, start(bot_id, r.fencing_token, now)) for r in reports],
            lambda: self.writer.tasks.start(bot_id, reports, cause),
        )

    def finish(self, data: st.DataObject, n: int) -> None:
        """A bot reports results and errors: like ``start``, mostly right, sometimes not.
        Sometimes of tasks it never reported started, saying how long they ran."""
        unstarted = data.draw(st.booleans(), label="start in the finish")
        state = TaskState.ASSIGNED if unstarted else TaskState.RUNNING
        ran_s = 0.001 if unstarted else None
        bot_id = self.pick(data, self.holders(state), self.bots, "bot")
        reports = []
        for _ in range(n):
            mine = self.mine(data, bot_id, state)
            task_id = self.pick(data, mine, self.tasks, "task")
            token = self.token(data, task_id)
            failed = data.draw(st.booleans(), label="failed")
            reports.append(self.outcome(data, task_id, token, ran_s, failed=failed))
        self.report_finish(bot_id, reports)

    def outcome(
        self, data: st.DataObject, task_id: UUID, token: int, ran_s: float | None, *, failed: bool
    ) -> Report:
        """A bot's report of how a task ended: a failure (of a kind, rarely not retryable:
        the task's answer), or a result."""
        if not failed:
            result = data.draw(results, label="result")
            return Report(task_id, token, result=result, ran_s=ran_s)
        return Report(
            task_id,
            token,
            error=data.draw(errors, label="error"),
            ran_s=ran_s,
            error_kind=data.draw(error_kinds, label="error kind"),
            retryable=data.draw(rarely(st.just(True), st.just(False)), label="retryable"),
        )

    def report_finish(self, bot_id: UUID, reports: list[Report]) -> None:
        cause = Cause(f"bot:{bot_id}", "finish")
        now = self.clock()
        self.change_tasks(
            "finish",
            [(r.task_id, finish(bot_id, r, now)) for r in reports],
            lambda: self.writer.tasks.finish(bot_id, reports, cause),
        )

    @precondition(lambda self: self.tasks and self.live_bots())
    @rule(data=st.data())
    def an_attempt(self, data: st.DataObject) -> None:
        """One attempt from end to end, as a dispatcher and a bot make it: a task that is
        due goes to a live bot, which starts it (or says in its finish how long it ran) and
        fails it, mostly, or succeeds, or is lost (the reaper takes the task back); so that
        within one example tasks are retried, run out of attempts, are dead-lettered and
        re-driven."""
        self.where(data)
        due = [i for i, t in self.tasks.items() if t.due(self.clock())]
        if not due:
            event("an attempt: none due")
            return
        task_id = data.draw(st.sampled_from(due), label="task")
        bot_id = data.draw(st.sampled_from(self.live_bots()), label="bot")
        self.assign_pairs(data, [(task_id, bot_id)])
        token = self.tasks[task_id].fencing_token
        unstarted = data.draw(st.booleans(), label="start in the finish")
        if not unstarted:
            self.report_start(bot_id, [Report(task_id, token)])
        end = data.draw(st.sampled_from(["failed"] * 3 + ["succeeded", "bot lost"]), label="end")
        if end == "bot lost":  # after its start an attempt that ended; before, none
            self.change_tasks(
                "release",
                [(task_id, expire(bot_id, "bot is gone", self.clock()))],
                lambda: self.writer.tasks.release(bot_id, [task_id], "bot is gone", REAPER),
            )
            return
        ran_s = 0.001 if unstarted else None
        report = self.outcome(data, task_id, token, ran_s, failed=end == "failed")
        self.report_finish(bot_id, [report])

    def mine(self, data: st.DataObject, bot_id: UUID, state: TaskState) -> list[UUID]:
        """The bot's tasks in ``state``; rarely all it ever held (repeats, reports too late)."""
        if data.draw(rarely(st.just(False), st.just(True)), label="any task of the bot"):
            return [i for i, t in self.tasks.items() if t.bot_id == bot_id]
        return self.having(state, bot_id=bot_id)

    def token(self, data: st.DataObject, task_id: UUID) -> int:
        current = self.tasks[task_id].fencing_token if task_id in self.tasks else 1
        return current + data.draw(token_offsets, label="token offset")

    @precondition(lambda self: self.tasks or self.bots)
    @rule(data=st.data())
    def trouble(self, data: st.DataObject) -> None:
        """What takes work away: a cancellation, a lost bot, a deregistration, the reaper."""
        self.where(data)
        moves = (["cancel", "release orphans", "flag unroutable"] if self.tasks else []) + (
            ["lose a bot", "deregister a bot"] if self.bots else []
        )
        move = data.draw(st.sampled_from(moves), label="trouble")
        if move == "cancel":
            self.cancel(data)
        elif move == "flag unroutable":
            self.flag_unroutable(data)
        elif move == "release orphans":
            self.release(data)
        else:
            self.bot_goes(data, lost=move == "lose a bot")

    def flag_unroutable(self, data: st.DataObject) -> None:
        """The dispatcher says no bot could do some tasks: mostly pending ones."""
        n = data.draw(st.integers(1, 3), label="tasks to flag")
        task_ids = [
            self.pick(data, self.having(TaskState.PENDING), self.tasks, "task") for _ in range(n)
        ]
        reason = data.draw(reasons, label="reason")

        def command() -> Committed[Any]:
            return self.writer.tasks.mark_unroutable(["gpu"], task_ids, reason, ["gpu"], DISPATCHER)

        if not text_ok(reason):
            self.refused("flag unroutable", InvalidInput, command)
            return
        committed = command()  # one record for them all, whatever they are by now
        [record] = committed.items
        assert record.task_ids == list(dict.fromkeys(task_ids))
        self.accepted("flag unroutable", committed, 1)
        self.unroutable[record.id] = record.task_ids
        for i in task_ids:
            if i not in self.tasks:  # named, and unknown: the record's readers pass it by
                continue
            outcome = flag(reason)(self.tasks[i])
            assert not isinstance(outcome, type)
            self.tasks[i] = outcome

    def cancel(self, data: st.DataObject) -> None:
        """Any task; often one waiting out its backoff (its retry must never fire then)."""
        waiting = [
            i for i, t in self.tasks.items() if t.state is TaskState.PENDING and t.attempt > 1
        ]
        preferred = waiting if data.draw(st.booleans(), label="a retry waiting") else self.tasks
        task_id = self.pick(data, preferred, self.tasks, "task")
        reason = data.draw(reasons, label="reason")
        self.change_tasks(
            "cancel",
            [(task_id, cancel(reason))],
            lambda: self.writer.tasks.cancel(task_id, reason, BOB),
        )

    def bot_goes(self, data: st.DataObject, *, lost: bool) -> None:
        """The reaper loses a bot with what it holds (as its index knows it), or it deregisters."""
        bot_id = self.pick(data, self.live_bots(), self.bots, "bot")
        before = self.bots.get(bot_id)
        if not lost:
            if before is None:
                self.refused(
                    "deregister", NotFound, lambda: self.writer.fleet.deregister(bot_id, ALICE)
                )
                return
            committed = self.writer.fleet.deregister(bot_id, ALICE)
            changes = before.state is not BotState.DEREGISTERED
            assert [b.id for b in committed.items] == ([bot_id] if changes else [])
            self.accepted("deregister", committed, int(changes))
            self.bots[bot_id] = replace(before, state=BotState.DEREGISTERED)
            return
        # The reaper releases what its index says the bot holds. Another node's reaper: what
        # the log says (its index caught up); rarely a list that is stale in every way.
        holding = self.having(*HELD, bot_id=bot_id)
        stale = st.lists(st.sampled_from([*holding, *self.tasks, GHOST]), unique=True, max_size=4)
        if data.draw(rarely(st.just(False), st.just(True)), label="a stale list"):
            self.elsewhere = True
            held = data.draw(stale, label="held")
        else:
            held = holding if self.elsewhere else self.index.held_by(bot_id)

        def lose() -> Committed[Bot]:
            return self.writer.fleet.lose(bot_id, held, "silence", REAPER)

        if before is None:
            self.refused("lose bot", NotFound, lose)
            return
        now = self.clock()
        after = {i: expire(bot_id, "silence", now)(self.tasks[i]) for i in held if i in self.tasks}
        tasks = {i: t for i, t in after.items() if isinstance(t, ModelTask)}
        changed = [i for i, t in tasks.items() if t != self.tasks[i]]
        marked = before.state is BotState.READY
        committed = lose()
        assert [b.id for b in committed.items] == [bot_id]
        self.accepted("lose bot", committed, len(changed) + marked)
        self.tasks.update(tasks)
        if marked:
            self.bots[bot_id] = replace(before, state=BotState.LOST)

    def release(self, data: st.DataObject) -> None:
        """The reaper takes back orphans: tasks its index says a bot that is not live holds.

        Or somebody else releases whatever (then it is no decision of this node's engine).
        """
        orphans = self.index.orphans()
        if orphans and not self.elsewhere:
            bot_id = data.draw(st.sampled_from(sorted(orphans)), label="orphaned bot")
            task_ids = orphans[bot_id]
        else:
            self.elsewhere = True
            orphaned = [b for b in self.holders(*HELD) if b not in self.live_bots()]
            bot_id = self.pick(data, orphaned, self.bots, "bot")
            n = data.draw(st.integers(1, 3), label="tasks to release")
            task_ids = [
                self.pick(data, self.having(*HELD, bot_id=bot_id), self.tasks, "task")
                for _ in range(n)
            ]
        now = self.clock()
        self.change_tasks(
            "release",
            [(i, expire(bot_id, "bot is gone", now)) for i in task_ids],
            lambda: self.writer.tasks.release(bot_id, task_ids, "bot is gone", REAPER),
        )

    # -- retries ------------------------------------------------------------------------

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def retry_manager(self, data: st.DataObject) -> None:
        """What ends attempts and sends tasks round again besides the bots: the engine's
        timeouts, an operator's re-drive (by hand, or in bulk from what a filter found)."""
        self.where(data)
        move = data.draw(st.sampled_from(["time out", "re-drive", "re-drive found"]), label="retry")
        if move == "time out":
            self.time_out(data)
        else:
            self.redrive(data, strict=move == "re-drive")

    def time_out(self, data: st.DataObject) -> None:
        """The timeouts loop ends the attempts its index says are overdue; or another node's
        loop, or a late one, names held tasks whatever their deadline (left alone)."""
        now = self.clock()
        overdue = {i for i, t in self.tasks.items() if (d := t.deadline()) and d <= now}
        if not self.elsewhere and data.draw(st.booleans(), label="from the index"):
            task_ids = self.index.overdue(now)
            if not self.lagging:  # caught up: it knows every deadline, and each one once
                off = set(task_ids) ^ overdue
                assert not off, f"the index's deadlines are off: {[self.tasks[i] for i in off]}"
        else:
            n = data.draw(st.integers(1, 3), label="tasks to time out")
            task_ids = [
                self.pick(data, overdue or self.having(*HELD), self.tasks, "task") for _ in range(n)
            ]
        event(f"time out: {len(overdue)} overdue")
        self.change_tasks(
            "time out",
            [(i, time_out(now)) for i in task_ids],
            lambda: self.writer.tasks.time_out(task_ids, TIMEOUTS),
        )

    def redrive(self, data: st.DataObject, *, strict: bool) -> None:
        """An operator re-drives failed, dead or cancelled tasks: by hand, all must be (else
        nothing is); in bulk, the others are passed over. Each is pending at once, aged
        and queued from its re-drive."""
        n = data.draw(st.integers(1, 3), label="tasks to re-drive")
        redrivable = [i for i, t in self.tasks.items() if t.state in REDRIVABLE]
        task_ids = [self.pick(data, redrivable, self.tasks, "task") for _ in range(n)]
        reason = data.draw(reasons, label="reason")
        now = self.clock()
        operator = Cause("carol", "req-c")
        redriven: list[tuple[int, Any]] = []

        def command() -> Committed[Task]:
            tasks = self.writer.tasks
            committed = (tasks.redrive if strict else tasks.redrive_found)(
                task_ids, reason, operator
            )
            redriven.extend(committed.recorded)
            return committed

        self.change_tasks(
            "re-drive" if strict else "re-drive found",
            [(i, redrive(reason, now, strict=strict)) for i in task_ids],
            command,
        )
        for position, e in redriven:  # its place in line: the re-drive's (live.py)
            assert isinstance(e, Task.Redriven)
            self.tasks[e.originator_id] = replace(self.tasks[e.originator_id], seq=position)

    # -- messages -------------------------------------------------------------------------

    @precondition(lambda self: self.bots)
    @rule(data=st.data())
    def mail(self, data: st.DataObject) -> None:
        """Messages go round: sent, handed out, acknowledged (or not in time), re-routed
        when their bot was lost, dead-lettered past their TTL; mostly right, sometimes not."""
        self.where(data)
        moves = ["send"] + (["deliver", "acknowledge", "route", "expire"] if self.messages else [])
        move = data.draw(st.sampled_from(moves), label="mail")
        if move == "send":
            self.send_message(data)
        elif move == "deliver":
            self.deliver_messages(data)
        elif move == "acknowledge":
            self.acknowledge_messages(data)
        elif move == "route":
            self.route_messages(data)
        else:
            self.expire_messages(data)

    @rule(seconds=st.sampled_from([0.25, 2, 11, 31, 61, 3601]))
    def time_passes(self, seconds: float) -> None:
        """Visibility deadlines (1-30 s), TTLs (5 s-1 h), retries' backoffs (0.5-60 s) and
        attempts' timeouts (5-30 s) run out."""
        self.clock.advance(seconds)

    def send_message(self, data: st.DataObject) -> None:
        """To a bot (a live one, mostly), a capability (the sender's pick of a capable bot,
        or none yet) or a pool (fanned out to the live bots picked); rarely a broken one."""
        how = data.draw(st.sampled_from(["bot", "capability", "pool"]), label="address")
        live = self.live_bots()
        to_bot, capability, pool, recipients = None, None, None, []
        if how == "bot":
            to_bot = self.pick(data, live, self.bots, "to bot")
            recipients = [to_bot]
        elif how == "capability":
            capability = data.draw(rarely(st.sampled_from(TYPES), st.just("GPU")), label="cap")
            capable = [b for b in live if capability in self.bots[b].capabilities]
            if capable and data.draw(rarely(st.just(True), st.just(False)), label="one picked"):
                recipients = [data.draw(st.sampled_from(capable), label="recipient")]
        else:
            pool = data.draw(rarely(st.just("p1"), st.just("Pool 1")), label="pool")
            some = st.lists(st.sampled_from(live), min_size=1, max_size=3, unique=True)
            recipients = data.draw(
                rarely(some, st.just([])) if live else st.just([]), label="recipients"
            )
        spec = MessageSpec(
            body=data.draw(json_texts, label="body"),
            to_bot=to_bot,
            to_capability=capability,
            to_pool=pool,
            conversation=data.draw(conversations, label="conversation"),
            ttl_s=data.draw(ttls, label="ttl"),
        )
        senders = [ALICE, BOB, *(Cause(f"bot:{b}", "send") for b in live)]
        sender = data.draw(st.sampled_from(senders), label="sender")

        def send() -> Committed[Message]:
            return self.writer.messages.send(spec, recipients, sender)

        if pool is not None and not recipients:
            self.refused("send message", Undeliverable, send)
            return
        if not message_spec_ok(spec):
            self.refused("send message", InvalidInput, send)
            return
        if to_bot is not None and to_bot not in self.bots:
            self.refused("send message", NotFound, send)
            return
        committed = send()
        now = self.clock()
        copies = [to_bot] if pool is None else recipients
        assert len(committed.items) == len(copies)
        assert not any(m.id in self.messages for m in committed.items)
        events = 0
        for message, copy_to in zip(committed.items, copies, strict=True):
            seq, after = 0, None
            if spec.conversation is not None:
                key = (spec.conversation, address(copy_to, capability))
                after, seq = self.conversations.get(key, (None, 0))
                seq += 1
                events += 1 + (after is None)  # Appended, after Opened for a new one
                self.conversations[key] = (message.id, seq)
            model = ModelMessage(
                to_bot=copy_to,
                to_capability=capability,
                to_pool=pool,
                conversation=spec.conversation,
                seq=seq,
                after=after,
                body=spec.body,
                ttl_s=spec.ttl_s,
                sender=sender.actor,
                sent_at=now,
            )
            if (
                pool is None
                and to_bot is not None
                and self.bots[to_bot].state is BotState.DEREGISTERED
            ):
                model = replace(
                    model,
                    state=MessageState.DEAD,
                    dead_reason="undeliverable: the bot is deregistered",
                )
            elif copy_to is not None or recipients:
                model = replace(model, state=MessageState.ROUTED, bot_id=copy_to or recipients[0])
            events += 1 + (model.state is not MessageState.WAITING)
            assert message_fields(message) == model.fields()
            self.messages[message.id] = model
            self.sent[message.id] = next(
                p for p, e in committed.recorded if e.originator_id == message.id
            )
        event(f"send message to a {how}: {committed.items[0].state}")
        self.accepted("send message", committed, events)

    def deliver_messages(self, data: st.DataObject) -> None:
        """A bot's claim hands out what it may have now; the rest is left, without a word."""
        bot_id = self.pick(data, self.recipients(MessageState.ROUTED), self.bots, "bot")
        mine = [i for i, m in self.messages.items() if m.bot_id == bot_id]
        n = data.draw(st.integers(1, 4), label="messages to claim")
        message_ids = [self.pick(data, mine, self.messages, "message") for _ in range(n)]
        visibility_s = data.draw(st.sampled_from([1, 10, 30]), label="visibility")
        now = self.clock()
        after = dict(self.messages)
        handed = []
        for i in message_ids:
            m = after.get(i)
            if m is None or not deliverable(m, bot_id, now):
                continue
            before = after.get(m.after) if m.after is not None else None
            if before is not None and before.state in OPEN:
                event("deliver: held back for the message before it")
                continue
            after[i] = hand_out(m, visibility_s, now)
            handed.append(i)
        committed = self.writer.messages.deliver(bot_id, message_ids, visibility_s, POSTMAN)
        assert [m.id for m in committed.items] == handed
        self.accepted("deliver messages", committed, len(handed))
        self.messages = after

    def acknowledge_messages(self, data: st.DataObject) -> None:
        """A bot acks hand-outs: its latest attempts, mostly; stale ones or others' too."""
        bot_id = self.pick(data, self.recipients(MessageState.DELIVERED), self.bots, "bot")
        mine = [i for i, m in self.messages.items() if m.bot_id == bot_id]
        if not data.draw(rarely(st.just(False), st.just(True)), label="any message of the bot"):
            mine = [i for i in mine if self.messages[i].state is MessageState.DELIVERED]
        attempts = {}
        for _ in range(data.draw(st.integers(1, 3), label="messages to ack")):
            i = self.pick(data, mine, self.messages, "message")
            current = self.messages[i].attempt if i in self.messages else 1
            attempts[i] = current + data.draw(token_offsets, label="attempt offset")
        self.change(
            "acknowledge messages",
            self.messages,
            [(i, acknowledge(bot_id, a)) for i, a in attempts.items()],
            lambda: self.writer.messages.acknowledge(
                bot_id, attempts, Cause(f"bot:{bot_id}", "ack")
            ),
        )

    def route_messages(self, data: st.DataObject) -> None:
        """What the postman does: a message sent to a capability that waits, or whose bot is
        gone, to a live capable bot. Sometimes a stale or wrong choice."""
        live = self.live_bots()
        stranded = [
            i
            for i, m in self.messages.items()
            if m.to_capability is not None and m.state in OPEN and m.bot_id not in live
        ]
        choices = {}
        for _ in range(data.draw(st.integers(1, 3), label="messages to route")):
            i = self.pick(data, stranded, self.messages, "message")
            wanted = self.messages[i].to_capability if i in self.messages else None
            capable = [b for b in live if wanted in self.bots[b].capabilities]
            choices[i] = self.pick(data, capable, self.bots, "recipient")
        self.change(
            "route messages",
            self.messages,
            [(i, reroute(b)) for i, b in choices.items()],
            lambda: self.writer.messages.route(choices, "rerouted: bot lost", POSTMAN),
        )

    def expire_messages(self, data: st.DataObject) -> None:
        """The postman dead-letters what is past its TTL: mostly such ones, sometimes not."""
        now = self.clock()
        past = [i for i, m in self.messages.items() if m.state in OPEN and now >= m.expires_at]
        n = data.draw(st.integers(1, 3), label="messages to expire")
        message_ids = [self.pick(data, past, self.messages, "message") for _ in range(n)]
        self.change(
            "expire messages",
            self.messages,
            [(i, expire_past_ttl(now)) for i in message_ids],
            lambda: self.writer.messages.expire(message_ids, POSTMAN),
        )

    def recipients(self, state: MessageState) -> list[UUID]:
        bots = (m.bot_id for m in self.messages.values() if m.state is state)
        return list(dict.fromkeys(b for b in bots if b is not None))

    @rule(move=st.sampled_from(["catch up", "fall behind", "read a page"]), page=st.integers(1, 5))
    def follower(self, move: str, page: int) -> None:
        """The live index's follower falls behind the writers for a while, then catches up."""
        if move == "read a page":
            self.follow(page, pages=1)
        self.lagging = move != "catch up"

    def follow(self, page: int, pages: int = EVERYTHING) -> None:
        """What ``LiveFeed`` does with a ``LogFollower`` of the models' topics."""
        for _ in range(pages):
            head = self.head()
            if head <= self.index.position:
                return
            notes = self.hive.recorder.select_notifications(
                self.index.position, page, stop=head, topics=FEED_TOPICS, inclusive_of_start=False
            )
            end = notes[-1].id if len(notes) == page else head
            events = [(n.id, self.hive.mapper.to_domain_event(n)) for n in notes]
            self.index.follow(events, end)
            self.mailbox.follow(events, end)
            if events:
                self.hive.observe(events)

    # -- invariants ---------------------------------------------------------------------

    def log(self) -> dict[UUID, Any]:
        """Every aggregate as the log has it: the events since the last look, decoded and
        applied (``mutate``) on top of what the earlier events made."""
        for note in self.hive.recorder.select_notifications(
            self.replayed_to, EVERYTHING, inclusive_of_start=False
        ):
            event: Any = self.hive.mapper.to_domain_event(note)
            key = cast(UUID, note.originator_id)
            self.replayed[key] = event.mutate(self.replayed.get(key))
            if isinstance(event, Task.Event):
                self.histories.setdefault(key, []).append(event)
            self.replayed_to = note.id
            self.replayed_events += 1
        return self.replayed

    @invariant()
    def the_log_holds_what_the_model_says(self) -> None:
        log = self.log()
        assert self.replayed_events == self.events, "the log holds other events than expected"
        conversations = {conversation_id(name, to) for name, to in self.conversations}
        assert log.keys() == {
            *self.tasks,
            *self.bots,
            *self.keys,
            *self.messages,
            *conversations,
            *self.unroutable,
            *self.rounds,
        }
        for record_id, named in self.unroutable.items():
            assert log[record_id].task_ids == named
        for round_id, made in self.rounds.items():
            assert (log[round_id].policy, log[round_id].groups) == (made.policy, made.groups)
        for task_id, model in self.tasks.items():
            assert task_fields(log[task_id]) == model.fields(), task_id
            told = attempts(self.histories[task_id])
            assert [
                (a.series, a.attempt, a.bot_id, str(a.outcome), a.error_kind) for a in told
            ] == (model.attempts()), task_id
        for bot_id, bot in self.bots.items():
            b = log[bot_id]
            assert (b.name, b.capabilities, b.max_concurrency, b.state) == (
                bot.name,
                bot.capabilities,
                bot.max_concurrency,
                bot.state,
            ), bot_id
        for message_id, message in self.messages.items():
            assert message_fields(log[message_id]) == message.fields(), message_id
        for (name, to), (last, seq) in self.conversations.items():
            c = log[conversation_id(name, to)]
            assert isinstance(c, Conversation)
            assert (c.name, c.address, c.last, c.seq) == (name, to, last, seq), (name, to)

    @invariant()
    def a_conversation_is_handed_out_in_order(self) -> None:
        """Over the log, not the model: no message was ever handed out while the one before
        it (same conversation, same address) was unfinished; that one is final for good."""
        log = self.log()
        for message_id in self.messages:
            m = log[message_id]
            if m.attempt > 0 and m.after is not None:
                before = log[m.after]
                assert before.state.is_final, f"{message_id} handed out before {m.after}"
                assert (before.conversation, before.seq) == (m.conversation, m.seq - 1)

    @invariant()
    def fencing_tokens_never_decrease_and_a_task_has_one_holder_at_most(self) -> None:
        log = self.log()
        for task_id in self.tasks:
            task = log[task_id]
            assert task.fencing_token >= self.tokens.get(task_id, 0), "a fencing token went back"
            self.tokens[task_id] = task.fencing_token
            if task.state in HELD:
                assert task.bot_id is not None and task.fencing_token >= 1
            elif task.state is TaskState.PENDING:
                assert task.bot_id is None
        holder: dict[UUID, UUID] = {}
        for bot_id, held in self.index.held.items():
            for task_id in held:
                assert holder.setdefault(task_id, bot_id) == bot_id, "two bots hold one task"

    @invariant()
    def every_attempt_counts_once_and_they_are_capped(self) -> None:
        """Over the log: in each series the attempts are numbered 1, 2, ... each once (a bot
        lost before its start made none, one lost after it made one), never more than its
        policy allows; a dead letter has used them all."""
        log = self.log()
        for task_id, model in self.tasks.items():
            task, cap = log[task_id], model.policy.max_attempts
            assert 1 <= task.attempt <= cap
            told = attempts(self.histories[task_id])
            for series in range(1, task.series + 1):
                numbers = [a.attempt for a in told if a.series == series]
                assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) <= cap
            if task.state is TaskState.DEAD:
                assert told[-1].attempt == cap

    @invariant()
    def the_hive_loads_what_the_log_says(self) -> None:
        """What the Hive loads is what replaying the log gives; so is what it keeps in its
        cache, once its node's follower has told it what other nodes wrote. Conversations
        aside: a node follows no conversation's events (``bootstrap.Node``'s feed), so one
        that another node appended to stays behind in its cache; harmless while the only
        command that reads one (``send_message``) reads it from the log."""
        if self.lagging:
            return
        self.follow(page=3)
        log = self.log()
        assert self.hive.load_many(HiveAggregate, log) == log
        for hive in self.nodes():
            for i, aggregate in log.items():
                if isinstance(aggregate, Conversation):
                    continue
                cached = hive.cached_many(HiveAggregate, [i])
                if cached:  # None (or nothing) when it is not in the cache
                    assert cached[i] == aggregate, f"{i} is cached behind the log"

    def moments(self, pending: list[tuple[UUID, ModelTask]]) -> list[tuple[Aging, float]]:
        """Points in time to order the pending tasks at: before aging counts (priority, then
        age), long after (all at the ceiling: age alone), and in between (a mix)."""
        times = [t.since for _, t in pending] or [0.0]
        first, last = min(times), max(times)
        spread = max(last - first, 1e-3)
        return [
            (Aging(step_s=1e9), last),
            (Aging(step_s=1e-9), last + 1.0),
            (Aging(step_s=spread / 3), last),
            (Aging(step_s=spread / 7), first + spread / 2),
        ]

    @invariant()
    def live_index_agrees_with_the_model(self) -> None:
        if self.lagging:
            return
        self.follow(page=3)
        assert self.index.position == self.head()
        open_tasks = {i: t for i, t in self.tasks.items() if t.state not in FINAL}
        # A pending task's token is no concern of the index's (a re-driven one comes back
        # with none: its event does not carry it); a held one's is what the bot must show.
        assert {
            i: (t.state, t.bot_id, t.fencing_token if t.bot_id else None)
            for i, t in self.index.tasks.items()
        } == {
            i: (str(t.state), t.bot_id, t.fencing_token if t.bot_id else None)
            for i, t in open_tasks.items()
        }
        self.index.release_due()  # as the dispatcher does first in each round
        at = self.clock()
        assert self.index.delayed == {
            i: t.not_before
            for i, t in open_tasks.items()
            if t.state is TaskState.PENDING and not t.due(at)
        }, "a retry is offered before its time, or not once it is due"
        pending = [(i, t) for i, t in open_tasks.items() if t.due(at)]
        for aging, now in self.moments(pending):
            by_urgency = sorted(pending, key=lambda p: urgency(p[1], aging, now))
            for caps in [None, *(self.bots[b].capabilities for b in self.live_bots()[:1])]:
                servable = (lambda _: True) if caps is None else frozenset(caps).__ge__
                expected = [i for i, t in by_urgency if servable(frozenset(t.capabilities))]
                n = len(expected)  # the first few must be the right few, for any few
                for limit in sorted({1, 2, 3, n // 3, n // 2, 2 * n // 3, n - 1, n, n + 1} - {0}):
                    got = self.index.pending(limit, servable, aging=aging, now=now)
                    assert [p.task_id for p in got] == expected[:limit], (
                        f"pending({limit}) for a bot with {caps}, aging {aging}, at {now}"
                    )
        unmarked = {i for i, t in pending if t.unroutable is None}
        assert set().union(*(q.unmarked for q in self.index.queues.values())) == unmarked
        held: dict[UUID, set[UUID]] = {}
        for i, t in open_tasks.items():
            if t.state in HELD and t.bot_id is not None:
                held.setdefault(t.bot_id, set()).add(i)
        assert dict(self.index.held) == held
        live = self.live_bots()
        assert set(self.index.live_bots()) == set(live)
        assert self.index.orphans() == {b: sorted(ts) for b, ts in held.items() if b not in live}

    @invariant()
    def the_mailbox_agrees_with_the_model(self) -> None:
        """The engine's mailbox (fed as the live index is) holds the unfinished messages, and
        offers each bot's claim what the model says it may have now, oldest first."""
        if self.lagging:
            return
        self.follow(page=3)
        unfinished = {i: m for i, m in self.messages.items() if m.state in OPEN}
        assert {
            i: (mail.state, mail.bot_id, mail.visible_until, mail.after, mail.expires_at)
            for i, mail in self.mailbox.mail.items()
        } == {
            i: (str(m.state), m.bot_id, m.visible_until, m.after, m.expires_at)
            for i, m in unfinished.items()
        }
        now = self.clock()
        for bot_id in [*self.bots, GHOST]:
            ready = [
                i
                for i, m in unfinished.items()
                if deliverable(m, bot_id, now) and (m.after is None or m.after not in unfinished)
            ]
            assert self.mailbox.for_bot(bot_id, now, EVERYTHING) == sorted(ready, key=self.sent.get)
            assert self.mailbox.load_of(bot_id) == sum(
                m.bot_id == bot_id for m in unfinished.values()
            )
        assert set(self.mailbox.expired(now, EVERYTHING)) == {
            i for i, m in unfinished.items() if now >= m.expires_at
        }
        live = set(self.live_bots())
        assert set(self.mailbox.to_route(live, EVERYTHING)) == {
            (i, m.to_capability)
            for i, m in unfinished.items()
            if m.to_capability is not None and m.bot_id not in live
        }


class TestHiveMachine(HiveMachine.TestCase):  # type: ignore[valid-type,misc]
    settings = settings(
        max_examples=200,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    pytestmark = pytest.mark.timeout(660)  # a failure is shrunk for up to five minutes
