"""The live index: what the control loops and the claim long-poll need, in memory.

It holds every task that is not finished (pending ones by priority and age, held ones by
bot) and every live bot. ``pending`` hands out the most urgent tasks by effective priority
(``domain/policies/aging.py``), so an old task of low priority is among them once aging
has lifted it, however many fresh urgent ones arrive. It starts from a consistent snapshot
of the tasks and fleet views and then follows the log. Events are applied idempotently
and strictly in version order (an event only right after the one before it), so the
snapshot's position and the events' order may overlap freely, and a writer may apply its
own committed events at once (``apply``), ahead of the follower: one that does not follow
on is left to the follower.

A delayed task (``not_before`` in the future) waits in a heap by due time, not in a
pending queue, so the dispatcher never sees it early; ``release_due`` moves the due ones
into their queues (the dispatcher calls it at the start of each round) and ``next_due``
says when to look again. The clock is injected, so tests move time by hand. A task waits,
for aging, from its ``not_before`` when that is later than its submission.

A retried task (``RetryScheduled``) is pending again and waits out its backoff in the
same heap; it remembers the bots whose attempts of its current series failed
(``failed_by``, which routing avoids while another bot has room) until a re-drive starts
a new series. An index filled from the views starts without that memory. A dead-lettered
task leaves the index as a finished one does; a re-driven one comes back.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from domain.aggregate import event_topics
from domain.bots import Bot
from domain.hive import utc_now
from domain.policies.aging import CEILING, Aging
from domain.policies.routing import BotSlots, PendingTask
from domain.tasks import Task
from domain.unroutable import UnroutableTasks
from projections.live_reads import live_tasks_and_bots
from runtime.models import LiveModel
from runtime.timeouts import Deadlines, TypeTimeout

log = logging.getLogger(__name__)

DEFAULT_AGING = Aging()

TOPICS = (*event_topics(Task), *event_topics(Bot), *event_topics(UnroutableTasks))


@dataclass
class LiveTask:
    task_id: UUID
    priority: int
    seq: int
    capabilities: frozenset[str]
    state: str
    bot_id: UUID | None
    fencing_token: int
    version: int
    submitted_at: datetime | None = None
    not_before: datetime | None = None
    type: str = ""
    unroutable: bool = False  # flagged: no bot could do it when last looked at
    moved_seq: int = 0  # log position of its latest event followed: older flags are stale
    failed_by: frozenset[UUID] = frozenset()  # bots whose attempts of its series failed
    began: datetime | None = None  # its attempt's start, or assignment when not reported
    timeout_s: float | None = None  # its submission's narrowing of its type's timeout
    since: float = field(init=False)  # waiting since (seconds since the epoch): its age

    def __post_init__(self) -> None:
        times = [t for t in (self.submitted_at, self.not_before) if t is not None]
        self.since = max(times).timestamp() if times else 0.0


@dataclass
class LiveBot:
    bot_id: UUID
    capabilities: frozenset[str]
    capacity: int
    version: int
    state: str = "ready"  # ready, draining, quarantined, probing: ready bots get new work
    pool: str | None = None
    takes_messages: bool = True  # it claims messages: a recipient of them
    probe_open: bool = False  # probing, and its one probe task not assigned yet
    failed_at: datetime | None = None  # when an attempt of it last failed (timed out, ...)

    @property
    def accepts_work(self) -> bool:
        return self.state == "ready"


class PendingQueue:
    """Pending tasks that need one set of capabilities: per priority, oldest first.

    Age is (submission time, log position). New tasks arrive in log order, so per priority
    a dict keeps them oldest first; a task that comes back (its bot was lost) is older than
    most, so it goes into a small sorted list merged in front as needed. ``unmarked`` are
    the tasks not flagged unroutable.
    """

    def __init__(self) -> None:
        self.fresh: list[dict[UUID, tuple[float, int]]] = [{} for _ in range(10)]
        self.returned: list[list[tuple[float, int, UUID]]] = [[] for _ in range(10)]
        self.size = 0
        self.unmarked: set[UUID] = set()

    def add(self, task: LiveTask) -> None:
        fresh = self.fresh[task.priority]
        age = (task.since, task.seq)
        if task.fencing_token == 0 and (not fresh or next(reversed(fresh.values())) < age):
            fresh[task.task_id] = age
        else:  # back from a lost bot, or arrived out of order (concurrent writers)
            bisect.insort(self.returned[task.priority], (*age, task.task_id))
        self.size += 1
        if not task.unroutable:
            self.unmarked.add(task.task_id)

    def remove(self, task: LiveTask) -> None:
        self.unmarked.discard(task.task_id)
        if self.fresh[task.priority].pop(task.task_id, None) is None:
            returned = self.returned[task.priority]
            entry = (task.since, task.seq, task.task_id)
            i = bisect.bisect_left(returned, entry)
            if i == len(returned) or returned[i] != entry:
                return
            del returned[i]
        self.size -= 1

    def heads(self) -> Iterator[UUID]:
        """The oldest task of each priority (the oldest of all is among them)."""
        for priority in range(10):
            if self.returned[priority]:
                yield self.returned[priority][0][2]
            if self.fresh[priority]:
                yield next(iter(self.fresh[priority]))

    def by_age(self) -> Iterator[tuple[int, Iterator[tuple[float, int, UUID]]]]:
        """Per priority that has tasks: (priority, its tasks oldest first)."""
        for priority in range(9, -1, -1):
            fresh, returned = self.fresh[priority], self.returned[priority]
            if not fresh and not returned:
                continue
            aged = ((at, seq, task_id) for task_id, (at, seq) in fresh.items())
            yield priority, heapq.merge(returned, aged) if returned else aged


def _most_urgent_first(
    priority: int, tasks: Iterator[tuple[float, int, UUID]], step_s: float, now: float
) -> Iterator[tuple[float, float, int, UUID]]:
    """One priority's tasks, oldest first, keyed as ``Aging.order`` keys them: for tasks of
    one priority that order is their age, so the keys come out sorted."""
    for at, seq, task_id in tasks:
        waited = now - at
        effective = priority + (waited / step_s if waited > 0 else 0.0)
        yield (-effective if effective < CEILING else -CEILING, at, seq, task_id)


@dataclass(frozen=True)
class Unservable:
    capabilities: frozenset[str]
    missing: list[str]  # of those, the ones no bot has at all
    task_ids: list[UUID]  # its pending tasks not flagged yet


@dataclass
class Changes:
    """What an applied batch of events means to the waiting loops."""

    assigned_to: set[UUID] = field(default_factory=set)
    work: bool = False  # a task became pending, capacity was freed or a bot came
    finished_by: list[UUID] = field(default_factory=list)  # bots that finished a task
    fleet: bool = False  # a bot came, went, or is ready again
    deadline: bool = False  # an attempt's deadline came that is sooner than all others


class LiveIndex(LiveModel):
    name = "live-index"
    topics = TOPICS
    handles = frozenset(
        {
            Task.Submitted,
            Task.Assigned,
            Task.Unroutable,
            Task.Started,
            Task.Succeeded,
            Task.Failed,
            Task.Cancelled,
            Task.LeaseExpired,
            Task.RetryScheduled,
            Task.DeadLettered,
            Task.Redriven,
            Bot.Registered,
            Bot.Draining,
            Bot.Quarantined,
            Bot.Probing,
            Bot.Reinstated,
            Bot.Lost,
            Bot.Deregistered,
            UnroutableTasks.Unroutable,
        }
    )

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.position = 0
        self.tasks: dict[UUID, LiveTask] = {}
        self.bots: dict[UUID, LiveBot] = {}
        self.held: defaultdict[UUID, set[UUID]] = defaultdict(set)
        self.queues: dict[frozenset[str], PendingQueue] = {}
        self.delayed: dict[UUID, datetime] = {}  # pending, not yet due: id -> not_before
        self._due_heap: list[tuple[datetime, int, UUID]] = []  # may hold stale entries
        self.deadlines = Deadlines()  # of the held attempts that have a timeout
        self.listeners: list[Callable[[Changes], None]] = []

    # -- snapshot ---------------------------------------------------------------------

    def fill(self, conn: psycopg.Connection[Any]) -> int:
        """Fill from the tasks and fleet views; returns where to follow from."""
        position, tasks, bots = live_tasks_and_bots(conn)
        with self.lock:
            for bot_id, caps, capacity, version, state, pool, reads in bots:
                self.bots[bot_id] = LiveBot(
                    bot_id, frozenset(caps), capacity, version, state, pool, reads
                )
            for task_id, priority, seq, caps, state, bot_id, token, version, *rest in tasks:
                at, due, task_type, unroutable, began, timeout_s = rest
                task = LiveTask(
                    task_id,
                    priority,
                    seq,
                    frozenset(caps),
                    state,
                    bot_id,
                    token,
                    version,
                    submitted_at=at,
                    not_before=due,
                    type=task_type,
                    unroutable=unroutable,
                    began=began,
                    timeout_s=timeout_s,
                )
                self._put(task)
                if bot_id is not None:
                    self.deadlines.watch(task)
            for bot in self.bots.values():  # a probe out already: the task it holds
                bot.probe_open = bot.state == "probing" and not self.held.get(bot.bot_id)
        return position

    # -- applying events --------------------------------------------------------------

    def apply(self, events: Iterable[tuple[int, Any]]) -> Changes:
        changes = Changes()
        submitted: list[UUID] = []
        with self.lock:
            for seq, event in events:
                if isinstance(event, Task.Event):
                    self._apply_task(seq, event, changes, submitted)
                elif isinstance(event, Bot.Event):
                    self._apply_bot(event, changes)
                elif isinstance(event, UnroutableTasks.Unroutable):
                    for task_id in event.task_ids:
                        self._flag(task_id, seq)
            # New work, unless assigned in its own submission (a hand-off): no round needed.
            if any(self.tasks[i].state == "pending" for i in submitted if i in self.tasks):
                changes.work = True
        if changes.assigned_to or changes.work:
            for listener in self.listeners:
                listener(changes)
        return changes

    def _flag(self, task_id: UUID, seq: int) -> None:
        """No bot could do it: it stays where it is in its queue, not offered for a flag
        again until an assignment clears this one. A record flags what is pending where it
        stands in the log: not a task assigned since, nor one pending again since (its bot
        lost, its attempt retried, re-driven): a record this process wrote, that the feed
        brings again later, changes nothing."""
        task = self.tasks.get(task_id)
        if task is None or task.state != "pending" or seq < task.moved_seq:
            return
        task.unroutable = True
        queue = self.queues.get(task.capabilities)
        if queue is not None:  # (or it is delayed still)
            queue.unmarked.discard(task_id)

    def _apply_task(self, seq: int, e: Any, changes: Changes, submitted: list[UUID]) -> None:
        task = self.tasks.get(e.originator_id)
        if isinstance(e, Task.Submitted):
            if task is None and e.originator_version == 1:
                self._queue(seq, e, e.not_before)
                submitted.append(e.originator_id)
            return
        if isinstance(e, Task.Redriven) and task is None:  # it was finished: queued anew
            self._queue(seq, e, None)
            changes.work = True
            return
        if task is None or e.originator_version != task.version + 1:
            return  # seen already, or one is missing in between: the follower brings it
        if isinstance(e, Task.Unroutable):  # as old logs flag a task
            task.version = e.originator_version
            self._flag(task.task_id, seq)
            return
        self._take_out(task)
        task.version, task.moved_seq = e.originator_version, seq
        match e:
            case Task.Assigned():
                task.state, task.bot_id, task.fencing_token = "assigned", e.bot_id, e.fencing_token
                task.unroutable = False
                task.began = e.timestamp
                changes.assigned_to.add(e.bot_id)
                if (bot := self.bots.get(e.bot_id)) is not None:
                    bot.probe_open = False  # a probing bot's one task
            case Task.Started():
                task.state, task.began = "running", e.timestamp
            case Task.LeaseExpired():
                task.state, task.bot_id = "pending", None
                changes.work = True
            case Task.RetryScheduled():  # pending again, not offered before its time
                if task.bot_id is not None:
                    changes.finished_by.append(task.bot_id)
                task.state, task.bot_id = "pending", None
                task.failed_by = task.failed_by | {e.bot_id}  # routed elsewhere if it can be
                self._failed(e)
                task.not_before = e.not_before
                task.since = e.not_before.timestamp()
                changes.work = True
            case Task.Redriven():  # (as a snapshot had it: finished, yet still here)
                task.state, task.bot_id, task.not_before = "pending", None, None
                task.unroutable = False
                task.failed_by = frozenset()
                task.since = e.timestamp.timestamp()
                changes.work = True
            case _:  # succeeded, failed, cancelled: gone from the index
                if isinstance(e, Task.DeadLettered):
                    self._failed(e)
                del self.tasks[task.task_id]
                changes.work = True
                if task.bot_id is not None and not isinstance(e, Task.Cancelled):
                    changes.finished_by.append(task.bot_id)
                return
        self._put(task)
        if task.bot_id is not None and self.deadlines.watch(task):
            changes.deadline = True

    def _failed(self, e: Task.RetryScheduled | Task.DeadLettered) -> None:
        """Its bot's attempt failed (a bot lost is gone from the index already)."""
        if (bot := self.bots.get(e.bot_id)) is not None:
            bot.failed_at = e.timestamp

    def recently_failed(self, since: datetime) -> frozenset[UUID]:
        """The live bots an attempt of which failed at ``since`` or later."""
        with self.lock:
            return frozenset(
                b.bot_id
                for b in self.bots.values()
                if b.failed_at is not None and b.failed_at >= since
            )

    def _queue(self, seq: int, e: Task.Submitted | Task.Redriven, due: datetime | None) -> None:
        """A task pending from ``e`` (its submission, or a re-drive of it once finished),
        aged from then."""
        self._put(
            LiveTask(
                e.originator_id,
                e.priority,
                seq,
                frozenset(e.capabilities),
                "pending",
                None,
                0,
                e.originator_version,
                e.timestamp,
                due,
                e.type,
                timeout_s=(e.retry or {}).get("timeout_s"),
                moved_seq=seq,
            )
        )

    def _apply_bot(self, e: Any, changes: Changes) -> None:
        bot = self.bots.get(e.originator_id)
        if isinstance(e, Bot.Registered):
            if bot is None and e.originator_version == 1:
                self.bots[e.originator_id] = LiveBot(
                    e.originator_id,
                    frozenset(e.capabilities),
                    e.max_concurrency,
                    1,
                    pool=e.pool,
                    takes_messages=e.takes_messages,
                )
                changes.work = changes.fleet = True
            return
        if bot is None or e.originator_version != bot.version + 1:
            return
        bot.version = e.originator_version
        match e:
            case Bot.Lost() | Bot.Deregistered():
                del self.bots[bot.bot_id]
                changes.work = changes.fleet = True
            case Bot.Draining():
                bot.state = "draining"
            case Bot.Quarantined():
                bot.state = "quarantined"
            case Bot.Probing():
                bot.state, bot.probe_open = "probing", True
                changes.work = changes.fleet = True
            case Bot.Reinstated():
                bot.state = "ready"
                changes.work = changes.fleet = True

    def _put(self, task: LiveTask) -> None:
        self.tasks[task.task_id] = task
        if task.state == "pending":
            if task.not_before is not None and task.not_before > self.clock():
                self.delayed[task.task_id] = task.not_before
                heapq.heappush(self._due_heap, (task.not_before, task.seq, task.task_id))
                return
            queue = self.queues.get(task.capabilities)
            if queue is None:
                queue = self.queues[task.capabilities] = PendingQueue()
            queue.add(task)
        elif task.bot_id is not None:
            self.held[task.bot_id].add(task.task_id)

    def _take_out(self, task: LiveTask) -> None:
        if task.state == "pending":
            if self.delayed and self.delayed.pop(task.task_id, None) is not None:
                return  # its heap entry goes stale: release_due passes over it
            self.queues[task.capabilities].remove(task)
        elif task.bot_id is not None:
            held = self.held.get(task.bot_id)
            if held is not None:
                held.discard(task.task_id)
                if not held:
                    del self.held[task.bot_id]

    # -- delayed tasks ----------------------------------------------------------------

    def release_due(self) -> int:
        """Move the delayed tasks that are due now into their pending queues; returns how
        many (and tells the listeners there is work when any)."""
        released = 0
        if not self._due_heap:  # the common case: no delayed task at all, no clock read
            return 0
        with self.lock:
            now = self.clock()
            heap = self._due_heap
            while heap and heap[0][0] <= now:
                due, _, task_id = heapq.heappop(heap)
                if self.delayed.get(task_id) != due:
                    continue  # stale: it left the index or is no longer waiting
                del self.delayed[task_id]
                task = self.tasks[task_id]
                queue = self.queues.get(task.capabilities)
                if queue is None:
                    queue = self.queues[task.capabilities] = PendingQueue()
                queue.add(task)
                released += 1
        if released:
            for listener in self.listeners:
                listener(Changes(work=True))
        return released

    def next_due(self) -> datetime | None:
        """When the earliest delayed task falls due; None when none waits."""
        with self.lock:
            heap = self._due_heap
            while heap and self.delayed.get(heap[0][2]) != heap[0][0]:
                heapq.heappop(heap)
            return heap[0][0] if heap else None

    # -- attempts' deadlines ----------------------------------------------------------

    def renew_deadlines(self, of_type: TypeTimeout | None) -> None:
        """Each type's timeout in force (None: no policy has one): every held attempt's
        deadline anew."""
        with self.lock:
            held = [self.tasks[t] for ts in self.held.values() for t in ts]
            self.deadlines.renew(of_type, held)

    def overdue(self, now: datetime) -> list[UUID]:
        """The held attempts past their deadline at ``now`` (each returned once)."""
        if not self.deadlines.heap:
            return []
        with self.lock:
            return self.deadlines.overdue(now, self.tasks)

    def next_deadline(self) -> datetime | None:
        with self.lock:
            return self.deadlines.soonest(self.tasks)

    # -- reading ----------------------------------------------------------------------

    def pending(
        self,
        limit: int,
        servable: Callable[[frozenset[str]], bool] = lambda _: True,
        *,
        aging: Aging = DEFAULT_AGING,
        now: float | None = None,
    ) -> list[PendingTask]:
        """The ``limit`` most urgent pending tasks at ``now`` (default: the clock's now;
        highest effective priority, then oldest), among those whose capabilities
        ``servable`` accepts: tasks nobody can take now never stand in the way of tasks
        somebody can. Exact, and it reads only about ``limit`` tasks: each (capabilities,
        priority) queue is already in that order, so their merge is."""
        if now is None:
            now = self.clock().timestamp()
        with self.lock:
            streams = [
                _most_urgent_first(priority, tasks, aging.step_s, now)
                for capabilities, queue in self.queues.items()
                if queue.size and servable(capabilities)
                for priority, tasks in queue.by_age()
            ]
            out = []
            for *_, task_id in itertools.islice(heapq.merge(*streams), max(limit, 0)):
                t = self.tasks[task_id]
                out.append(
                    PendingTask(
                        t.task_id, t.priority, t.seq, t.capabilities, t.type, t.since, t.failed_by
                    )
                )
        return out

    def unservable(self, limit: int) -> list[Unservable]:
        """Capability sets whose pending tasks include some not flagged unroutable, and that
        no bot could ever take: none that is ready or quarantined (an operator may reinstate
        it) has all of them. A draining bot never takes new work again, so it does not
        count. Per set, not per task: cheap every round. At most ``limit`` tasks per set."""
        with self.lock:
            offered = [b.capabilities for b in self.bots.values() if b.state != "draining"]
            out = []
            for capabilities, queue in self.queues.items():
                if queue.unmarked and not any(capabilities <= o for o in offered):
                    known = frozenset().union(*offered)
                    missing = sorted(capabilities - known)
                    task_ids = list(itertools.islice(queue.unmarked, limit))
                    out.append(Unservable(capabilities, missing, task_ids))
        return out

    def slots(self) -> list[BotSlots]:
        """Bots that take new work (ready ones), with their loads; a probing bot as one
        slot, free until its probe task is assigned."""
        with self.lock:
            return [
                BotSlots(b.bot_id, b.capabilities, b.capacity, len(self.held.get(b.bot_id, ())))
                if b.accepts_work
                else BotSlots(b.bot_id, b.capabilities, 1, 0 if b.probe_open else 1)
                for b in self.bots.values()
                if b.accepts_work or b.state == "probing"
            ]

    def readers(self) -> list[LiveBot]:
        """Ready bots that take messages: whom a message to a capability may go to."""
        with self.lock:
            return [
                LiveBot(**vars(b))
                for b in self.bots.values()
                if b.accepts_work and b.takes_messages
            ]

    def assigned_to(self, bot_id: UUID, limit: int) -> list[tuple[UUID, int]]:
        with self.lock:
            out = []
            for task_id in self.held.get(bot_id, ()):
                task = self.tasks[task_id]
                if task.state == "assigned":
                    out.append((-task.priority, task.seq, task_id, task.fencing_token))
        out.sort()
        return [(task_id, token) for _, _, task_id, token in out[:limit]]

    def orphans(self) -> dict[UUID, list[UUID]]:
        """Tasks held by bots that are no longer live, by bot."""
        with self.lock:
            return {b: sorted(ts) for b, ts in self.held.items() if b not in self.bots}

    def pending_count(self) -> int:
        """Pending tasks that are due (the delayed ones wait for their time)."""
        with self.lock:
            return sum(queue.size for queue in self.queues.values())

    def backlog(self, servable: Callable[[frozenset[str]], bool]) -> tuple[int, datetime | None]:
        """How many pending tasks ``servable`` accepts, and when the oldest was submitted."""
        count, oldest = 0, None
        with self.lock:
            for capabilities, queue in self.queues.items():
                if queue.size and servable(capabilities):
                    count += queue.size
                    for task_id in queue.heads():
                        at = self.tasks[task_id].submitted_at
                        if at is not None and (oldest is None or at < oldest):
                            oldest = at
        return count, oldest

    def oldest_pending(self) -> dict[str, LiveTask]:
        """Per task type, its oldest task due and pending, among the oldest of each queue
        and priority (a type whose tasks share a queue with older ones of another type
        shows only when it heads one): what the incident detector's pending-age rule reads,
        without a walk over every pending task."""
        oldest: dict[str, LiveTask] = {}
        with self.lock:
            for queue in self.queues.values():
                for task_id in queue.heads():
                    task = self.tasks[task_id]
                    known = oldest.get(task.type)
                    if known is None or task.since < known.since:
                        oldest[task.type] = task
        return oldest

    def bots_of(self, pool: str) -> list[tuple[LiveBot, int]]:
        """A pool's live bots, each with how many tasks it holds."""
        with self.lock:
            return [
                (LiveBot(**vars(b)), len(self.held.get(b.bot_id, ())))
                for b in self.bots.values()
                if b.pool == pool
            ]

    def pool_of(self, bot_id: UUID) -> str | None:
        with self.lock:
            bot = self.bots.get(bot_id)
            return None if bot is None else bot.pool

    def bots_in_pool(self, pool: str) -> int:
        """How many live bots belong to ``pool``."""
        with self.lock:
            return sum(1 for b in self.bots.values() if b.pool == pool)

    def is_live(self, bot_id: UUID) -> bool:
        """Whether the bot is registered and neither lost nor deregistered, as far as this
        index has heard (a bot registered elsewhere a moment ago may not be here yet)."""
        return bot_id in self.bots

    def live_bots(self) -> list[UUID]:
        with self.lock:
            return list(self.bots)

    def held_by(self, bot_id: UUID) -> list[UUID]:
        with self.lock:
            return sorted(self.held.get(bot_id, ()))
