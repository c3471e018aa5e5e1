"""The Hive: one event-sourced application, the only way anything in the hive changes.

Every command loads what it needs from the log, asks the aggregates to decide, and saves
all resulting events in one ``save()`` (one transaction, one table lock). Batches are the
rule, not the exception: a bulk submit, a round of dispatch or a bot's report of many
tasks is one transaction. Conflicts with concurrent writers (optimistic concurrency on
aggregate versions) are retried from a fresh load; a rule broken by any item refuses the
whole batch, so a refused command never leaves half its events behind.
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar, cast
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.aggregate_cache import AggregateCache
from domain.bots import Bot, BotState
from domain.cause import Cause
from domain.errors import ConcurrentUpdate, HiveError, InvalidInput, NotFound, Undeliverable
from domain.keys import ApiKey, Role, format_token, hash_secret
from domain.launches import Launch
from domain.messages import Conversation, Message, conversation_id
from domain.policies.routing import Assignment
from domain.policies.schedule import Overlap, due
from domain.pools import Pool, pool_id
from domain.schedules import Schedule, ScheduleSpec, ScheduleState
from domain.tasks import Task, TaskState

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")

IDEMPOTENCY_NAMESPACE = UUID("5d1c3f0e-7a0b-4d3e-9a61-6b1f1f6c0a11")
MAX_ATTEMPTS = 8


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Committed(Generic[T]):
    """What a command changed, and the log position after it (for read-your-writes)."""

    items: list[T]
    position: int | None
    recorded: list[tuple[int, Any]] = field(default_factory=list)  # (position, event)


@dataclass(frozen=True)
class TaskSpec:
    type: str
    priority: int = 5
    capabilities: list[str] | None = None
    payload: str = "{}"
    idempotency_key: str | None = None
    not_before: datetime | None = None  # not offered to a bot before then
    schedule_id: UUID | None = None  # set by the scheduler only: the schedule that fired it


@dataclass(frozen=True)
class Submission:
    task: Task
    duplicate: bool


@dataclass(frozen=True)
class Report:
    """A bot's word on one task it holds: started, or finished with a result or an error."""

    task_id: UUID
    fencing_token: int
    result: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class MessageSpec:
    """What a sender asks for; exactly one of ``to_bot``, ``to_capability``, ``to_pool``."""

    body: str  # canonical JSON text
    to_bot: UUID | None = None
    to_capability: str | None = None
    to_pool: str | None = None
    conversation: str | None = None
    task_id: UUID | None = None
    ttl_s: int = 3600


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    token: str  # shown once; only its hash is stored


class Hive(Application[UUID]):
    name = "Hive"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], UUID] = uuid4,
        new_secret: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    ) -> None:
        super().__init__(env)
        self.cache = AggregateCache()
        self.listeners: list[Callable[[list[tuple[int, Any]]], object]] = []
        self.lock = threading.RLock()  # one command at a time per process: the log
        self.clock = clock  # serializes writers anyway; this keeps cached aggregates whole
        self.new_id = new_id
        self.new_secret = new_secret

    # -- tasks ------------------------------------------------------------------------

    def submit_tasks(self, specs: Sequence[TaskSpec], cause: Cause) -> Committed[Submission]:
        at = self.clock()
        ids = [self._task_id(spec, cause) for spec in specs]
        keyed = [i for i, s in zip(ids, specs, strict=True) if s.idempotency_key is not None]
        existing = self.load_many(Task, keyed)
        for _ in range(MAX_ATTEMPTS):
            # New aggregates each attempt: a failed save has consumed the last ones' events.
            fresh = self._new_tasks(ids, specs, cause, at, existing)
            try:
                recorded = self._save(fresh.values())
                break
            except IntegrityError:
                found = self.load_many(Task, keyed)  # a concurrent submit with our key won
                if not found.keys() - existing.keys():
                    raise
                existing.update(found)
        else:
            raise ConcurrentUpdate()
        seen: set[UUID] = set()
        out = []
        for task_id in ids:
            out.append(
                Submission(
                    existing.get(task_id) or fresh[task_id],
                    duplicate=task_id in existing or task_id in seen,
                )
            )
            seen.add(task_id)
        return _committed(out, recorded)

    def _new_tasks(
        self,
        ids: list[UUID],
        specs: Sequence[TaskSpec],
        cause: Cause,
        at: datetime,
        existing: dict[UUID, Task],
    ) -> dict[UUID, Task]:
        fresh: dict[UUID, Task] = {}
        for index, (task_id, s) in enumerate(zip(ids, specs, strict=True)):
            task = _at_index(
                index,
                len(specs),
                partial(
                    Task.submit,
                    task_id=task_id,
                    type=s.type,
                    priority=s.priority,
                    capabilities=s.capabilities,
                    payload=s.payload,
                    idempotency_key=s.idempotency_key,
                    cause=cause,
                    at=at,
                    not_before=s.not_before,
                    schedule_id=s.schedule_id,
                ),
            )  # every item is checked, repeats of a key too: a bad batch is refused whole
            if task_id not in fresh and task_id not in existing:
                fresh[task_id] = task
        return fresh

    def assign_tasks(self, assignments: Sequence[Assignment], cause: Cause) -> Committed[Task]:
        """Record the dispatcher's choices; tasks no longer pending are left alone."""
        chosen = {a.task_id: a for a in assignments}

        def assign(task: Task, at: datetime) -> None:
            if task.state is TaskState.PENDING:
                a = chosen[task.id]
                task.assign(a.bot_id, a.why, cause, at)

        return self._change(Task, list(chosen), assign)

    def mark_unroutable(
        self, task_ids: Sequence[UUID], reason: str, missing: list[str], cause: Cause
    ) -> Committed[Task]:
        """Flag pending tasks no bot could do; those flagged already or no longer pending
        are left alone."""
        return self._change(
            Task, list(task_ids), lambda t, at: t.mark_unroutable(reason, missing, cause, at)
        )

    def start_tasks(self, bot_id: UUID, reports: Sequence[Report], cause: Cause) -> Committed[Task]:
        tokens = {r.task_id: r.fencing_token for r in reports}
        return self._change(
            Task, list(tokens), lambda t, at: t.start(bot_id, tokens[t.id], cause, at)
        )

    def finish_tasks(
        self, bot_id: UUID, reports: Sequence[Report], cause: Cause
    ) -> Committed[Task]:
        by_id = {r.task_id: r for r in reports}

        def finish(task: Task, at: datetime) -> None:
            r = by_id[task.id]
            if r.error is not None:
                task.fail(bot_id, r.fencing_token, r.error, cause, at)
            else:
                task.succeed(bot_id, r.fencing_token, r.result or "null", cause, at)

        return self._change(Task, list(by_id), finish)

    def cancel_task(self, task_id: UUID, reason: str, cause: Cause) -> Committed[Task]:
        return self._change(Task, [task_id], lambda t, at: t.cancel(reason, cause, at))

    def release_tasks(
        self, bot_id: UUID, task_ids: Iterable[UUID], reason: str, cause: Cause
    ) -> Committed[Task]:
        """Take tasks back from a bot that is gone: they return to pending."""
        return self._change(
            Task,
            list(task_ids),
            lambda t, at: t.expire_lease(bot_id, reason, cause, at),
        )

    # -- bots -------------------------------------------------------------------------

    def register_bot(
        self,
        *,
        name: str,
        capabilities: list[str],
        max_concurrency: int,
        version_label: str,
        cause: Cause,
        pool: str | None = None,
        launch_id: UUID | None = None,
    ) -> tuple[Bot, IssuedKey, int | None]:
        """A new bot, and the key it will use from now on (bound to its id). A bot that a
        launcher started names its launch, which records the registration in the same save."""
        bot_id = self.new_id()
        made: list[tuple[Bot, IssuedKey]] = []

        def register(found: dict[UUID, Any], at: datetime) -> list[Any]:
            # Made anew on each attempt: a failed save has consumed the last ones' events.
            bot = Bot.register(
                bot_id=bot_id,
                name=name,
                capabilities=capabilities,
                max_concurrency=max_concurrency,
                version_label=version_label,
                cause=cause,
                at=at,
                pool=pool,
                launch_id=launch_id,
            )
            issued = self._new_key(f"bot-{bot_id.hex[:12]}", Role.BOT, bot_id, cause, at)
            made.append((bot, issued))
            if launch_id is None:
                return [bot, issued.key]
            launch = found.get(launch_id)
            if not isinstance(launch, Launch):
                raise InvalidInput(f"no launch {launch_id}", launch_id=launch_id)
            if launch.pool != pool:
                raise InvalidInput(f"launch {launch_id} is for pool {launch.pool}")
            launch.register(bot_id, cause, at)
            return [bot, issued.key, launch]

        committed = self._decide([] if launch_id is None else [launch_id], register)
        bot, issued = made[-1]
        return bot, issued, committed.position

    def mark_bot_lost(self, bot_id: UUID, reason: str, cause: Cause) -> Committed[Bot]:
        return self._change(Bot, [bot_id], lambda b, at: b.mark_lost(reason, cause, at))

    def lose_bot(
        self, bot_id: UUID, held: Sequence[UUID], reason: str, cause: Cause
    ) -> Committed[Bot]:
        """The bot went silent: mark it lost and return the tasks it held, in one save."""

        def lose(found: dict[UUID, Any], at: datetime) -> list[Any]:
            bot = found.get(bot_id)
            if not isinstance(bot, Bot):
                raise NotFound(f"no bot {bot_id}", id=bot_id)
            bot.mark_lost(reason, cause, at)
            tasks = [t for t in found.values() if isinstance(t, Task)]
            for task in tasks:
                task.expire_lease(bot_id, reason, cause, at)
            return [bot, *tasks]

        c = self._decide([bot_id, *held], lose)
        return Committed([a for a in c.items if isinstance(a, Bot)], c.position, c.recorded)

    def drain_bots(self, bot_ids: Sequence[UUID], reason: str, cause: Cause) -> Committed[Bot]:
        """No new work for these bots; they finish what they hold (then they can stop)."""
        return self._change(Bot, list(bot_ids), lambda b, at: b.drain(reason, cause, at))

    def quarantine_bot(self, bot_id: UUID, reason: str, cause: Cause) -> Committed[Bot]:
        return self._change(Bot, [bot_id], lambda b, at: b.quarantine(reason, cause, at))

    def reinstate_bot(self, bot_id: UUID, cause: Cause) -> Committed[Bot]:
        return self._change(Bot, [bot_id], lambda b, at: b.reinstate(cause, at))

    def deregister_bot(self, bot_id: UUID, cause: Cause) -> Committed[Bot]:
        return self._change(Bot, [bot_id], lambda b, at: b.deregister(cause, at))

    # -- schedules --------------------------------------------------------------------

    def create_schedule(self, spec: ScheduleSpec, cause: Cause) -> Committed[Schedule]:
        at = self.clock()
        schedule = Schedule.create(schedule_id=self.new_id(), spec=spec, cause=cause, at=at)
        return _committed([schedule], self._save([schedule]))

    def pause_schedule(self, schedule_id: UUID, cause: Cause) -> Committed[Schedule]:
        return self._change(Schedule, [schedule_id], lambda s, at: s.pause(cause, at))

    def resume_schedule(self, schedule_id: UUID, cause: Cause) -> Committed[Schedule]:
        return self._change(Schedule, [schedule_id], lambda s, at: s.resume(cause, at))

    def delete_schedule(self, schedule_id: UUID, cause: Cause) -> Committed[Schedule]:
        return self._change(Schedule, [schedule_id], lambda s, at: s.delete(cause, at))

    def fire_schedules(self, schedule_ids: Sequence[UUID], cause: Cause) -> Committed[Schedule]:
        """Decide the due ticks of these schedules now and record each decision together
        with the tasks it fires, all in one save. Two engines deciding the same tick
        collide on the schedule's version (and the task's id): the loser decides again
        from the log and finds the tick done. Returns every schedule found, as it now is.
        """
        ids = list(dict.fromkeys(schedule_ids))
        from_log = False  # first from the cache; a save catches staleness, a no-op re-checks
        for _ in range(MAX_ATTEMPTS):
            with self.lock:
                schedules = self._load(Schedule, ids, from_log=from_log)
                at = self.clock()
                try:
                    tasks = [t for s in schedules.values() for t in self._fire(s, cause, at)]
                    dirty = [s for s in schedules.values() if s.pending_events]
                    if not dirty and not from_log:
                        from_log = True
                        continue
                    return _committed(list(schedules.values()), self._save([*dirty, *tasks]))
                except IntegrityError:
                    self.cache.forget(ids)
                    from_log = True
                    continue
                except BaseException:
                    self.cache.forget(ids)
                    raise
        raise ConcurrentUpdate()

    def _fire(self, schedule: Schedule, cause: Cause, at: datetime) -> list[Task]:
        if schedule.state is not ScheduleState.ACTIVE:
            return []
        decision = due(schedule.timing, at, self._previous_run_open(schedule))
        t = schedule.template
        return [
            Task.submit(
                task_id=firing.task_id,
                type=t.type,
                priority=t.priority,
                capabilities=t.capabilities,
                payload=t.payload,
                idempotency_key=None,
                cause=cause,
                at=at,
                schedule_id=schedule.id,
            )
            for firing in schedule.record(decision, cause, at)
        ]

    def _previous_run_open(self, schedule: Schedule) -> bool:
        """Whether the last task the schedule fired is unfinished, as the log says."""
        if schedule.overlap is Overlap.ALLOW_ALL or schedule.last_task_id is None:
            return False
        task = self._load(Task, [schedule.last_task_id], from_log=True).get(schedule.last_task_id)
        return task is not None and not task.state.is_final

    # -- scaling ----------------------------------------------------------------------

    def resize_pool(
        self, name: str, desired: int, reason: str, inputs: dict[str, Any], cause: Cause
    ) -> Committed[Pool]:
        """Record a pool's new desired size (opening the pool's record on first use)."""

        def resize(found: dict[UUID, Any], at: datetime) -> list[Any]:
            pool = found.get(pool_id(name)) or Pool.open(name, cause, at)
            pool.resize(desired, reason, inputs, cause, at)
            return [pool]

        return self._decide([pool_id(name)], resize)

    def request_launches(
        self, pool: str, count: int, launcher: str, reason: str, cause: Cause
    ) -> Committed[Launch]:
        at = self.clock()
        launches = [
            Launch.request(
                launch_id=self.new_id(),
                pool=pool,
                launcher=launcher,
                reason=reason,
                cause=cause,
                at=at,
            )
            for _ in range(count)
        ]
        return _committed(launches, self._save(launches))

    def close_launches(
        self, exits: Mapping[UUID, int | None], reason: str, cause: Cause
    ) -> Committed[Launch]:
        """Their processes are gone: a failure before registration, a stop after."""
        return self._change(
            Launch, list(exits), lambda lx, at: lx.close(exits[lx.id], cause, at, reason=reason)
        )

    def drain_launched_bots(
        self, bots: dict[UUID, UUID], reason: str, cause: Cause
    ) -> Committed[Bot]:
        """Scale-down: each bot (by id, with its launch id) drains and its launch is marked
        stopping, in one save."""

        def drain(found: dict[UUID, Any], at: datetime) -> list[Any]:
            changed: list[Any] = []
            for bot_id, launch_id in bots.items():
                bot, launch = found.get(bot_id), found.get(launch_id)
                if isinstance(bot, Bot) and bot.state is BotState.READY:
                    bot.drain(reason, cause, at)
                    changed.append(bot)
                    if isinstance(launch, Launch):
                        launch.stop(reason, cause, at)
                        changed.append(launch)
            return changed

        return self._decide([*bots, *bots.values()], drain)

    # -- messages ---------------------------------------------------------------------

    def send_message(
        self, spec: MessageSpec, recipients: Sequence[UUID], cause: Cause
    ) -> Committed[Message]:
        """Send, and route at once to ``recipients`` (the caller's pick from what is live):
        the addressee itself, a capable bot (none: it waits for one), or every live bot of
        the pool (one message each; none: refused as undeliverable)."""
        if spec.to_pool is not None and not recipients:
            raise Undeliverable(f"pool {spec.to_pool} has no live bot", pool=spec.to_pool)
        copies = [spec.to_bot] if spec.to_pool is None else list(recipients)
        ids = [self.new_id() for _ in copies]
        name = spec.conversation
        conversations = (
            [conversation_id(name, _address(spec, b)) for b in copies] if name is not None else []
        )
        bots = [spec.to_bot] if spec.to_bot is not None else []

        def send(found: dict[UUID, Any], at: datetime) -> list[Any]:
            changed: list[Any] = []
            for n, (message_id, to_bot) in enumerate(zip(ids, copies, strict=True)):
                seq, after = 0, None
                if name is not None:
                    conv_id = conversations[n]
                    conv = found.get(conv_id) or Conversation.open(
                        name, _address(spec, to_bot), cause, at
                    )
                    found[conv_id] = conv
                    seq, after = conv.append(message_id, cause, at)
                    changed.append(conv)
                message = Message.send(
                    message_id=message_id,
                    to_bot=to_bot,
                    to_capability=spec.to_capability,
                    to_pool=spec.to_pool,
                    conversation=spec.conversation,
                    seq=seq,
                    after=after,
                    task_id=spec.task_id,
                    body=spec.body,
                    ttl_s=spec.ttl_s,
                    cause=cause,
                    at=at,
                )
                _route_new(message, found, recipients, cause, at)
                changed.append(message)
            return list({a.id: a for a in changed}.values())

        c = self._decide([*bots, *dict.fromkeys(conversations)], send)
        return Committed([a for a in c.items if isinstance(a, Message)], c.position, c.recorded)

    def route_messages(
        self, choices: Mapping[UUID, UUID], why: str, cause: Cause
    ) -> Committed[Message]:
        """Give messages sent to a capability a (new) recipient; final ones are left."""

        def route(m: Message, at: datetime) -> None:
            if not m.state.is_final:
                m.route(choices[m.id], why, cause, at)

        return self._change(Message, list(choices), route)

    def deliver_messages(
        self, bot_id: UUID, message_ids: Sequence[UUID], visibility_s: float, cause: Cause
    ) -> Committed[Message]:
        """Hand out to ``bot_id`` those it may have now: routed to it, not in flight, not
        expired, and whose predecessor in their conversation is acknowledged or dead."""
        known = self.load_many(Message, message_ids, fresh=False)
        before = [m.after for m in known.values() if m.after is not None]  # never changes

        def deliver(found: dict[UUID, Any], at: datetime) -> list[Any]:
            out = []
            for i in message_ids:
                after = known[i].after if i in known else None
                m, prev = found.get(i), None if after is None else found.get(after)
                if not isinstance(m, Message) or not m.deliverable(bot_id, at):
                    continue
                if isinstance(prev, Message) and not prev.state.is_final:
                    continue
                m.deliver(bot_id, visibility_s, cause, at)
                out.append(m)
            return out

        return self._decide([*known, *before], deliver)

    def acknowledge_messages(
        self, bot_id: UUID, attempts: Mapping[UUID, int], cause: Cause
    ) -> Committed[Message]:
        return self._change(
            Message,
            list(attempts),
            lambda m, at: m.acknowledge(bot_id, attempts[m.id], cause, at),
        )

    def expire_messages(self, message_ids: Sequence[UUID], cause: Cause) -> Committed[Message]:
        """Dead-letter those whose TTL has passed; the others are left as they are."""
        return self._change(Message, list(message_ids), lambda m, at: m.expire(cause, at))

    # -- keys -------------------------------------------------------------------------

    def issue_key(self, principal: str, role: Role, cause: Cause) -> IssuedKey:
        issued = self._new_key(principal, role, None, cause, self.clock())
        self._save([issued.key])
        return issued

    def revoke_key(self, key_id: UUID, cause: Cause) -> Committed[ApiKey]:
        return self._change(ApiKey, [key_id], lambda k, at: k.revoke(cause, at))

    # -- reading the truth ------------------------------------------------------------

    def load_many(self, kind: type[A], ids: Iterable[UUID], *, fresh: bool = True) -> dict[UUID, A]:
        """Aggregates of one kind as the log has them; ids not found are left out.

        Read from the log itself (the cache may be behind another process's writes) unless
        ``fresh`` is False, for a caller that tolerates that (its next command re-checks).
        The caller gets copies, to read at leisure while commands go on.
        """
        with self.lock:
            found = self._load(kind, list(dict.fromkeys(ids)), from_log=fresh)
            return {i: _detached(a) for i, a in found.items()}

    def cached_many(self, kind: type[A], ids: Iterable[UUID]) -> dict[UUID, A] | None:
        """Like ``load_many``, but only from memory and never waiting: None when any is not
        cached or a command is running. For callers that must not block (an event loop)."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            found = {}
            for i in ids:
                aggregate = self.cache.get(i)
                if aggregate is None:
                    return None
                if isinstance(aggregate, kind):
                    found[i] = _detached(aggregate)
            return found
        finally:
            self.lock.release()

    def observe(self, events: Iterable[tuple[int, Any]]) -> None:
        """Events seen in the log: forget cached aggregates that another process moved on."""
        with self.lock:
            for _, event in events:
                self.cache.forget_older(event.originator_id, event.originator_version)

    def _load(self, kind: type[A], wanted: list[UUID], *, from_log: bool = False) -> dict[UUID, A]:
        found: dict[UUID, Any] = {}
        missing = []
        for i in wanted:
            cached = None if from_log else self.cache.get(i)
            if cached is None:
                missing.append(i)
            else:
                found[i] = cached
        if missing:
            loaded = self._read_log(missing)
            self.cache.put(loaded.values())
            found.update(loaded)
        return {i: a for i, a in found.items() if isinstance(a, kind)}

    def _read_log(self, ids: list[UUID]) -> dict[UUID, Any]:
        select_many = getattr(self.recorder, "select_events_many", None)
        found: dict[UUID, Any] = {}
        if select_many is None:
            for i in ids:
                try:
                    found[i] = self.repository.get(i)
                except AggregateNotFoundError:
                    continue
            return found
        stored: list[StoredEvent] = select_many(ids)
        for record in stored:
            event: Any = self.mapper.to_domain_event(record)
            key = cast(UUID, record.originator_id)
            found[key] = event.mutate(found.get(key))
        return found

    def history(self, aggregate_id: UUID) -> list[Any]:
        """Every event of one aggregate, oldest first, as the log has them."""
        return list(self.repository.event_store.get(aggregate_id))

    def get(self, kind: type[A], aggregate_id: UUID) -> A:
        found = self.load_many(kind, [aggregate_id])
        if aggregate_id not in found:
            raise NotFound(f"no {kind.__name__.lower()} {aggregate_id}", id=aggregate_id)
        return found[aggregate_id]

    # -- machinery --------------------------------------------------------------------

    def _change(
        self, kind: type[A], ids: list[UUID], command: Callable[[A, datetime], None]
    ) -> Committed[A]:
        """Load, decide, save once; retry from a fresh load when a concurrent writer won."""
        from_log = False  # first from the cache; from the log after any doubt
        for _ in range(MAX_ATTEMPTS):
            with self.lock:
                found = self._load(kind, ids, from_log=from_log)
                missing = [i for i in ids if i not in found]
                if missing and not from_log:
                    from_log = True  # perhaps another kind under that id was cached
                    continue
                if missing:
                    shown = ", ".join(map(str, missing[:5]))
                    raise NotFound(f"no {kind.__name__.lower()} {shown}", ids=missing)
                at = self.clock()
                try:
                    for i in ids:
                        command(found[i], at)
                    changed = [found[i] for i in ids if found[i].pending_events]
                    if len(changed) < len(ids) and not from_log:
                        # Left as it was, by cached state that may be behind: re-check.
                        self.cache.forget(ids)
                        from_log = True
                        continue
                    return _committed(changed, self._save(found.values()))
                except IntegrityError:  # another writer got there first: decide again
                    self.cache.forget(ids)
                    from_log = True
                    continue
                except HiveError:
                    self.cache.forget(ids)  # half-decided aggregates must not stay cached
                    if from_log:
                        raise
                    from_log = True  # refused on cached state, which may be stale: re-check
                    continue
                except BaseException:
                    self.cache.forget(ids)
                    raise
        raise ConcurrentUpdate()

    def _decide(
        self, ids: list[UUID], decide: Callable[[dict[UUID, Any], datetime], list[Any]]
    ) -> Committed[Any]:
        """A decision over aggregates of several kinds, read from the log (never from a
        possibly stale cache) and saved at once; retried when a concurrent writer won."""
        for _ in range(MAX_ATTEMPTS):
            with self.lock:
                found = self._load(Aggregate, ids, from_log=True)  # type: ignore[type-abstract]
                try:
                    changed = decide(found, self.clock())
                    recorded = self._save(changed)
                    return _committed(changed, recorded)
                except IntegrityError:
                    self.cache.forget(ids)
                    continue
                except BaseException:
                    self.cache.forget(ids)
                    raise
        raise ConcurrentUpdate()

    def _save(self, aggregates: Iterable[Aggregate]) -> list[tuple[int, Any]]:
        dirty = [a for a in aggregates if a.pending_events]
        if not dirty:
            return []
        # As Application.save does, minus its per-object protocol checks, which cost more
        # than the rest of the Python side of a save at a hundred events.
        processing = ProcessingEvent[UUID]()
        for aggregate in dirty:
            processing.events.extend(aggregate.collect_events())
            processing.aggregates[aggregate.id] = aggregate
        with self.lock:
            try:
                recordings = self._record(processing)
            except BaseException:
                self.cache.forget(processing.aggregates)
                raise
            self.cache.put(dirty)
        self._take_snapshots(processing)
        self._notify(recordings)
        recorded = [(r.notification.id, r.domain_event) for r in recordings]
        for listener in self.listeners:
            listener(recorded)
        return recorded

    def _task_id(self, spec: TaskSpec, cause: Cause) -> UUID:
        if spec.idempotency_key is None:
            return self.new_id()
        return uuid5(IDEMPOTENCY_NAMESPACE, f"{cause.actor}\n{spec.idempotency_key}")

    def _new_key(
        self, principal: str, role: Role, bot_id: UUID | None, cause: Cause, at: datetime
    ) -> IssuedKey:
        key_id, secret = self.new_id(), self.new_secret()
        key = ApiKey.issue(
            key_id=key_id,
            principal=principal,
            role=role,
            secret_hash=hash_secret(secret),
            bot_id=bot_id,
            cause=cause,
            at=at,
        )
        return IssuedKey(key, format_token(key_id, secret))


def _address(spec: MessageSpec, to_bot: UUID | None) -> str:
    """Whom order is kept for: each bot (a pool's fan-out too) or the capability."""
    return f"capability:{spec.to_capability}" if to_bot is None else f"bot:{to_bot}"


def _route_new(
    message: Message, found: dict[UUID, Any], recipients: Sequence[UUID], cause: Cause, at: datetime
) -> None:
    if message.to_bot is None:  # by capability: the caller's pick, if any
        if recipients:
            message.route(recipients[0], "capability", cause, at)
        return
    bot = found.get(message.to_bot)
    if message.to_pool is None and not isinstance(bot, Bot):
        raise NotFound(f"no bot {message.to_bot}", id=message.to_bot)
    if isinstance(bot, Bot) and bot.state is BotState.DEREGISTERED:
        message.dead_letter("undeliverable: the bot is deregistered", cause, at)
        return
    message.route(message.to_bot, "pool" if message.to_pool else "addressed", cause, at)


def _detached(aggregate: A) -> A:
    """A copy that shares nothing mutable with the cached original."""
    twin = copy.copy(aggregate)
    twin._pending_events = []  # type: ignore[attr-defined]
    return twin


def _committed(items: list[T], recorded: list[tuple[int, Any]]) -> Committed[T]:
    return Committed(items, max((p for p, _ in recorded), default=None), recorded)


def _at_index(index: int, total: int, make: Callable[[], T]) -> T:
    """Name the offending item when one of a batch breaks a rule."""
    try:
        return make()
    except HiveError as e:
        if total == 1:
            raise
        raise InvalidInput(f"item {index}: {e.message}", index=index, **e.context) from e
