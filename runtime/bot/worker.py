"""BotWorker: registers, heartbeats, claims, runs and reports tasks, in batches.

Threads (all started by ``run``):

- **heartbeat**: renews the lease every ``heartbeat_interval_s`` of the current
  registration, until the worker has reported its last task.
- **claimer**: when there are free slots, long-polls ``claim(max_tasks=free slots)``,
  reserves the slots and runs the batch. Fast handlers (``runs_inline``) run right there,
  and are never reported started: their finish says how long they ran (``ran_s``), so
  the hive records start and finish as one event; the claimer waits for those reports to
  land before it claims again (until then the hive still lists them as assigned to it).
  The rest are ``start``ed in one call, then run on a pool of ``max_concurrency``
  threads. A hive that does not take ``ran_s`` (``Registration.start_in_finish``) has
  every task started first.
- **reporter**: takes every finished task at once (never waits for more than is
  ready) and sends one ``complete`` and one ``fail`` call per flush, split only where the
  hive's batch and body limits demand it; while a flush is on the wire, new outcomes pile
  up for the next one, so batches grow with the load.
- **pool**: ``max_concurrency`` task threads.

A slot is taken from the claim until the handler returns (not until the report lands),
so the next claim overlaps the previous report.

When the hive says the bot is lost (``BotLost``), whoever hears it first abandons
everything the old registration held (the hive already took those tasks back: their
outcomes are dropped, tasks still running finish into the void) and registers again;
the others see a new registration and carry on.

``stop()`` (SIGTERM/SIGINT in ``apiary bot``) stops claiming; ``run`` then waits for the
tasks in hand, reports them, deregisters and returns 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from runtime.bot.client import (
    BotLost,
    ClaimedTask,
    HiveClient,
    HiveRejected,
    Refused,
    Registration,
    TaskFailure,
    TaskRef,
    TaskResult,
    Terms,
    Unavailable,
)
from runtime.bot.handlers import Handler, TaskError, runs_inline
from runtime.bot.messenger import MessagePoller, Messenger, OnMessage

log = logging.getLogger(__name__)

MAX_BATCH = 1000
"""Items per batch call (the hive's ``APIARY_MAX_BATCH`` default)."""
MAX_BODY_BYTES = 256 * 1024
"""Bytes per request body (the hive's ``APIARY_MAX_PAYLOAD_BYTES`` default)."""
_ITEM_OVERHEAD_BYTES = 96  # {"task_id":"<uuid>","fencing_token":N,"result":...},
_BODY_SLACK_BYTES = 1024
_REFUSALS_LOGGED = 20  # task ids (with reasons) named in one log record
RETRY_PAUSE_S = 1.0
"""Pause after the client gave up on a call (its own retries spent) before trying again."""

Report = TaskResult | TaskFailure
H = TypeVar("H")
Item = TypeVar("Item", bound=ClaimedTask | TaskResult | TaskFailure)


@dataclass(frozen=True)
class _Outcome:
    """A finished task, as seen by the registration that claimed it."""

    registration: Registration
    report: Report
    unstarted: bool = False  # never reported started: its report carries ``ran_s``


@dataclass
class Tally:
    """What this worker did (for logs and tests); ``abandoned``: outcomes dropped because
    the registration that claimed them was lost."""

    registrations: int = 0
    claimed: int = 0
    started: int = 0
    completed: int = 0
    failed: int = 0
    refused: int = 0
    abandoned: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Fatal(Exception):
    """The hive will not have this bot (e.g. a revoked enrolment token)."""


class BotWorker:
    def __init__(
        self,
        client: HiveClient,
        capabilities: Sequence[str],
        name: str,
        max_concurrency: int,
        version: str,
        handler_for: Callable[[ClaimedTask], Handler],
        *,
        inline: Callable[[Handler], bool] = runs_inline,
        claim_wait_s: float = 10.0,
        max_batch: int = MAX_BATCH,
        max_body_bytes: int = MAX_BODY_BYTES,
        retry_pause_s: float = RETRY_PAUSE_S,
        pool: str | None = None,
        launch_id: str | None = None,
        on_message: OnMessage | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._client = client
        self._capabilities = list(capabilities)
        self._name = name
        self._max_concurrency = max_concurrency
        self._version = version
        self._handler_for = handler_for
        self._inline = inline
        self._claim_wait_s = claim_wait_s
        self._max_batch = max_batch
        self._max_body_bytes = max_body_bytes
        self._retry_pause_s = retry_pause_s
        self._pool_name = pool
        self._launch_id = launch_id
        self.tally = Tally()
        self._tally_lock = threading.Lock()

        self._stopping = threading.Event()  # no more claims
        self._closing = threading.Event()  # everything reported: heartbeat and reporter end
        self._broken = threading.Event()  # a worker thread crashed: stop without draining
        self._finished_run = threading.Event()
        self._session = threading.Lock()  # one re-registration at a time
        self._registration: Registration | None = None  # who the bot is: its identity
        self._terms: Terms | None = None  # what the config in force asks of it
        self._exit_code = 0

        self._slots = threading.Condition()
        self._in_flight = 0  # claimed and reserved, handler not yet returned

        self._outbox = threading.Condition()
        self._ready: list[_Outcome] = []
        self._sending = False
        self._unstarted = 0  # outcomes of unstarted tasks not yet reported (see _claims)

        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="apiary-task")
        self.messenger = Messenger(client, lambda: self._registration)
        self._on_message = on_message

    @property
    def registration(self) -> Registration | None:
        return self._registration

    # -- life ---------------------------------------------------------------------------

    def run(self) -> int:
        """Works until ``stop()``; returns the process exit code."""
        try:
            self._registration = self._register()
        except Fatal:
            self._pool.shutdown()
            return self._exit_code
        if self._registration is None:
            self._pool.shutdown()
            return self._exit_code  # stopped before the hive answered
        heartbeat = self._thread("heartbeat", self._heartbeats)
        self._thread("claimer", self._claims)  # may outlive run() inside a long-poll
        if self._on_message is not None:  # so may this one
            poller = MessagePoller(
                self._client,
                self.messenger,
                self._on_message,
                lambda: self._registration,
                self._stopping,
                self._lost,
                wait_s=self._claim_wait_s,
                retry_pause_s=self._retry_pause_s,
            )
            self._thread("messages", poller.run)
        reporter = self._thread("reporter", self._reports)
        self._stopping.wait()
        log.info("stopping: finishing tasks in hand", extra={"action": "stop"})
        with self._slots:
            self._slots.wait_for(lambda: self._in_flight == 0 or self._broken.is_set())
        with self._outbox:
            self._outbox.wait_for(
                lambda: (not self._ready and not self._sending) or self._broken.is_set()
            )
        self._closing.set()
        self._client.config_news.set()  # the heartbeat's wait ends now
        with self._outbox:
            self._outbox.notify_all()
        heartbeat.join()
        reporter.join()
        self._deregister()
        self._finished_run.set()
        self._pool.shutdown(wait=not self._broken.is_set())
        log.info("stopped", extra={"action": "stopped", **self.tally.as_dict()})
        return self._exit_code

    def stop(self) -> None:
        """Stop claiming; ``run`` finishes what is in hand, deregisters and returns.

        Safe from a signal handler as long as that thread is not the one in ``run``.
        """
        self._stopping.set()
        with self._slots:
            self._slots.notify_all()
        with self._outbox:
            self._outbox.notify_all()

    def _thread(self, role: str, loop: Callable[[], None]) -> threading.Thread:
        """Starts one of the worker's loops; a crash in it stops the worker (exit 1)."""

        def guarded() -> None:
            try:
                loop()
            except Exception:
                if self._finished_run.is_set():
                    return  # e.g. a long-poll answered after run() closed up: moot
                log.critical(
                    "a worker thread crashed; stopping",
                    exc_info=True,
                    extra={"action": f"{role}.crash"},
                )
                self._exit_code = 1
                self._broken.set()
                self.stop()
                with self._outbox:
                    self._outbox.notify_all()

        thread = threading.Thread(target=guarded, name=f"apiary-{role}", daemon=True)
        thread.start()
        return thread

    def _register(self) -> Registration | None:
        """Registers, retrying while the hive is unavailable; None if stopped first."""
        while not self._stopping.is_set():
            try:
                registration = self._client.register(
                    self._name,
                    self._capabilities,
                    self._max_concurrency,
                    self._version,
                    pool=self._pool_name,
                    launch_id=self._launch_id,
                    takes_messages=self._on_message is not None,
                )
            except Unavailable as e:
                log.warning(
                    "hive unavailable; will register again",
                    extra={"action": "register.retry", "reason": str(e)},
                )
                self._stopping.wait(max(self._retry_pause_s, e.retry_after or 0.0))
                continue
            except HiveRejected as e:
                log.error(
                    "the hive refused to register the bot",
                    extra={"action": "register.refused", "reason": str(e)},
                )
                self._exit_code = 1
                self.stop()
                raise Fatal(str(e)) from e
            self._count(registrations=1)
            log.info(
                "registered",
                extra={
                    "action": "register",
                    "bot_id": registration.bot_id,
                    "bot_name": self._name,
                    "heartbeat_interval_s": registration.heartbeat_interval_s,
                },
            )
            self._terms = Terms.of(registration)  # until a heartbeat says otherwise
            return registration
        return None

    def _lost(self, lost: Registration) -> None:
        """The hive lost ``lost``: abandon what it held and register again (once)."""
        with self._session:
            if self._registration is not lost:
                return  # someone already dealt with it
            with self._outbox:
                stale = [o for o in self._ready if o.registration is lost]
                self._ready = [o for o in self._ready if o.registration is not lost]
                self._unstarted -= sum(o.unstarted for o in stale)
                self._outbox.notify_all()
            with self._slots:
                running = self._in_flight
            self._count(abandoned=len(stale))
            log.warning(
                "bot lost; abandoning its tasks and registering again",
                extra={
                    "action": "bot.lost",
                    "bot_id": lost.bot_id,
                    "finished_unreported": len(stale),
                    "in_hand": running,
                },
            )
            self._registration = None
            if self._stopping.is_set():
                return  # leaving anyway: nothing to come back for
            try:
                self._registration = self._register()
            except Fatal:
                return

    def _deregister(self) -> None:
        with self._session:  # from here a 409 on a late long-poll is no news
            registration, self._registration = self._registration, None
        if registration is None:
            return
        try:
            self._client.deregister(bot=registration)
        except (Unavailable, HiveRejected, BotLost) as e:
            log.warning(
                "could not deregister; the hive will find the bot lost",
                extra={"action": "deregister.failed", "reason": str(e)},
            )
            return
        log.info("deregistered", extra={"action": "deregister", "bot_id": registration.bot_id})

    # -- heartbeat ----------------------------------------------------------------------

    def _heartbeats(self) -> None:
        while True:
            registration = self._registration
            terms = self._terms if registration is not None else None
            interval = terms.heartbeat_interval_s if terms else self._retry_pause_s
            # The interval, or at once when the hive says a new config version is in force.
            self._client.config_news.wait(interval)
            self._client.config_news.clear()
            if self._closing.is_set():
                return
            registration = self._registration
            if registration is None:
                continue
            try:
                mine = self._terms or Terms.of(registration)
                now = self._client.heartbeat(bot=registration, terms=mine)
                if now != mine:
                    self._terms = now  # the config in force: its interval and lease
                    self._client.config_news.set()  # say so at once: heartbeat again
                    log.info(
                        "config applied",
                        extra={"action": "config_applied", "version": now.config_version},
                    )
            except BotLost:
                self._lost(registration)
            except (Unavailable, HiveRejected) as e:
                log.warning("heartbeat failed", extra={"action": "heartbeat", "reason": str(e)})

    # -- claim, start, run ----------------------------------------------------------------

    def _claims(self) -> None:
        while not self._stopping.is_set():
            with self._slots:
                self._slots.wait_for(
                    lambda: self._in_flight < self._max_concurrency or self._stopping.is_set()
                )
                free = self._max_concurrency - self._in_flight
            registration = self._registration
            if self._stopping.is_set():
                return
            if registration is None:
                self._stopping.wait(self._retry_pause_s)
                continue
            try:
                tasks = self._client.claim(
                    min(free, self._max_batch), self._claim_wait_s, bot=registration
                )
            except BotLost:
                self._lost(registration)
                continue
            except (Unavailable, HiveRejected) as e:
                if not self._stopping.is_set():
                    log.warning("claim failed", extra={"action": "claim", "reason": str(e)})
                    self._stopping.wait(self._retry_pause_s)
                continue
            if not tasks:
                continue
            with self._slots:
                if self._stopping.is_set():
                    log.info(
                        "claimed while stopping; leaving the tasks to the hive",
                        extra={"action": "claim.left", "count": len(tasks)},
                    )
                    return
                self._in_flight += len(tasks)
            self._count(claimed=len(tasks))
            self._run(tasks, registration)
            self._await_unstarted_reports()

    def _start(self, tasks: list[ClaimedTask], registration: Registration) -> list[ClaimedTask]:
        """Starts the batch in one call; refused tasks are dropped and the rest sent again."""
        pending = tasks
        while pending:
            try:
                self._client.start(
                    [TaskRef(t.id, t.fencing_token) for t in pending], bot=registration
                )
            except Refused as e:
                pending = self._without_refused("start", pending, e)
                continue
            except BotLost:
                self._lost(registration)
                return []
            except Unavailable as e:
                # It may have landed with its answer lost, and a claim does not return
                # started tasks: send the same start again (it is idempotent) until the
                # hive answers, or the worker stops (deregistering returns them).
                log.warning(
                    "start failed; will send again", extra={"action": "start", "reason": str(e)}
                )
                if self._stopping.wait(self._retry_pause_s):
                    return []
                continue
            except HiveRejected as e:
                log.error("start rejected", extra={"action": "start", "reason": str(e)})
                return []
            self._count(started=len(pending))
            return pending
        return []

    def _run(self, tasks: list[ClaimedTask], registration: Registration) -> None:
        """Inline handlers (and tasks no handler takes) are done here and now, unstarted:
        each report says how long it ran. The others are started in one call, then pooled."""
        here: list[tuple[ClaimedTask, Handler | TaskError]] = []
        pooled: list[tuple[ClaimedTask, Handler]] = []
        for task in tasks:
            try:
                handler = self._handler_for(task)
            except TaskError as e:
                here.append((task, e))
                continue
            if self._inline(handler):
                here.append((task, handler))
            else:
                pooled.append((task, handler))
        if here and not registration.start_in_finish:  # an older hive: start them first
            self._run_here(self._started(here, registration), registration, unstarted=False)
        elif here:
            self._run_here(here, registration, unstarted=True)
        for task, handler in self._started(pooled, registration):
            self._pool.submit(self._run_pooled, task, handler, registration)

    def _started(
        self, tasks: list[tuple[ClaimedTask, H]], registration: Registration
    ) -> list[tuple[ClaimedTask, H]]:
        """Those of ``tasks`` the hive took the start of; the slots of the others are freed."""
        if not tasks:
            return []
        started = {t.id for t in self._start([t for t, _ in tasks], registration)}
        if len(started) < len(tasks):
            self._release(len(tasks) - len(started))
        return [(t, h) for t, h in tasks if t.id in started]

    def _run_here(
        self,
        tasks: list[tuple[ClaimedTask, Handler | TaskError]],
        registration: Registration,
        *,
        unstarted: bool,
    ) -> None:
        outcomes: list[_Outcome] = []
        for task, handler in tasks:
            began = time.monotonic()
            if isinstance(handler, TaskError):
                report: Report = _failure(task, handler)
            else:
                report = self._execute(task, handler)
            if unstarted:
                report = replace(report, ran_s=time.monotonic() - began)
            outcomes.append(_Outcome(registration, report, unstarted))
        if outcomes:
            self._finished(outcomes)

    def _await_unstarted_reports(self) -> None:
        """Until the reports of unstarted tasks land, the hive lists those tasks as still
        assigned to this bot, and the next claim would hand them out again."""
        with self._outbox:
            self._outbox.wait_for(lambda: self._unstarted == 0 or self._stopping.is_set())

    def _run_pooled(self, task: ClaimedTask, handler: Handler, registration: Registration) -> None:
        self._finished([_Outcome(registration, self._execute(task, handler))])

    def _execute(self, task: ClaimedTask, handler: Handler) -> Report:
        try:
            result = handler(task.payload)
        except TaskError as e:
            return _failure(task, e)
        except Exception as e:
            log.error(
                "handler crashed",
                extra={"action": "task.crash", "task_id": task.id, "error": type(e).__name__},
            )
            log.debug("handler traceback", exc_info=True, extra={"action": "task.crash"})
            crash = TaskError(f"handler crashed: {type(e).__name__}", kind=CRASH)
            return _failure(task, crash)
        try:
            report = TaskResult.of(task.id, task.fencing_token, result)
        except TypeError as e:
            return _failure(task, TaskError(f"the result is not JSON: {e}", **_BAD_RESULT))
        limit = self._max_body_bytes - _BODY_SLACK_BYTES - _ITEM_OVERHEAD_BYTES
        if len(report.result_json) > limit:
            size = len(report.result_json)
            too_large = f"the result is {size} bytes; the hive takes at most {limit}"
            return _failure(task, TaskError(too_large, **_BAD_RESULT))
        return report

    def _finished(self, outcomes: list[_Outcome]) -> None:
        with self._outbox:
            self._ready.extend(outcomes)
            self._unstarted += sum(o.unstarted for o in outcomes)
            self._outbox.notify_all()
        self._release(len(outcomes))

    def _release(self, count: int) -> None:
        with self._slots:
            self._in_flight -= count
            self._slots.notify_all()

    # -- reports ------------------------------------------------------------------------

    def _reports(self) -> None:
        while True:
            with self._outbox:
                self._outbox.wait_for(lambda: bool(self._ready) or self._closing.is_set())
                if not self._ready:
                    return
                batch, self._ready = self._ready, []
                self._sending = True
            unsent = batch
            try:
                unsent = self._flush(batch)
            finally:
                with self._outbox:
                    self._sending = False
                    self._unstarted -= sum(o.unstarted for o in batch)
                    self._unstarted += sum(o.unstarted for o in unsent)
                    self._outbox.notify_all()
            if unsent:
                with self._outbox:
                    self._ready[:0] = unsent
                self._closing.wait(self._retry_pause_s)  # paces the retry while the hive is away

    def _flush(self, batch: list[_Outcome]) -> list[_Outcome]:
        """Sends one flush; returns what must be sent again (the hive was unavailable)."""
        registration = self._registration
        live = [o for o in batch if o.registration is registration]
        if len(live) < len(batch):
            self._count(abandoned=len(batch) - len(live))
        if registration is None or not live:
            return []
        results = [o.report for o in live if isinstance(o.report, TaskResult)]
        failures = [o.report for o in live if isinstance(o.report, TaskFailure)]
        try:
            for completed in self._chunks(results):
                self._send(
                    "complete", lambda c: self._client.complete(c, bot=registration), completed
                )
            for failed in self._chunks(failures):
                self._send("fail", lambda c: self._client.fail(c, bot=registration), failed)
        except Unavailable as e:
            log.warning(
                "report failed; will send again", extra={"action": "report", "reason": str(e)}
            )
            return live  # reports are idempotent: resending what landed changes nothing
        except BotLost:
            self._lost(registration)
        return []

    def _send(self, kind: str, send: Callable[[list[Item]], None], items: list[Item]) -> None:
        """One batch call; a refusal drops the refused items and sends the rest again."""
        pending = items
        while pending:
            try:
                send(pending)
            except Refused as e:
                pending = self._without_refused(kind, pending, e)
                continue
            except HiveRejected as e:
                if e.status == 413 and len(pending) > 1:  # the hive's limit is below ours
                    half = len(pending) // 2
                    self._send(kind, send, pending[:half])
                    self._send(kind, send, pending[half:])
                    return
                log.error(
                    "report rejected; dropping it",
                    extra={
                        "action": kind,
                        "status": e.status,
                        "count": len(pending),
                        "reason": str(e),
                    },
                )
                return
            self._count(**{"completed" if kind == "complete" else "failed": len(pending)})
            log.debug("reported", extra={"action": kind, "count": len(pending)})
            return

    def _without_refused(self, kind: str, items: list[Item], refusal: Refused) -> list[Item]:
        reasons = {i.task_id: i.reason for i in refusal.items}
        kept = [i for i in items if _task_id(i) not in reasons]
        dropped = len(items) - len(kept)
        if dropped == 0:
            log.error(
                "the hive refused a batch without naming any of its tasks; dropping it",
                extra={"action": f"{kind}.refused", "count": len(items)},
            )
            dropped, kept = len(items), []
        else:
            log.warning(
                "the hive refused part of a batch; dropping those tasks, sending the rest",
                extra={
                    "action": f"{kind}.refused",
                    "count": dropped,
                    "refused": dict(list(reasons.items())[:_REFUSALS_LOGGED]),
                    "resending": len(kept),
                },
            )
        self._count(refused=dropped)
        return kept

    def _chunks(self, items: Sequence[Item]) -> Iterator[list[Item]]:
        """Splits where the hive's item or body limit would be crossed; otherwise one chunk."""
        budget = self._max_body_bytes - _BODY_SLACK_BYTES
        chunk: list[Item] = []
        size = 0
        for item in items:
            cost = _ITEM_OVERHEAD_BYTES + (
                len(item.result_json)
                if isinstance(item, TaskResult)
                else len(item.error.encode())
                if isinstance(item, TaskFailure)
                else 0
            )
            if chunk and (len(chunk) >= self._max_batch or size + cost > budget):
                yield chunk
                chunk, size = [], 0
            chunk.append(item)
            size += cost
        if chunk:
            yield chunk

    def _count(self, **deltas: int) -> None:
        with self._tally_lock:
            for name, delta in deltas.items():
                setattr(self.tally, name, getattr(self.tally, name) + delta)


CRASH = "crash"  # the handler raised something other than a TaskError: maybe a fluke
_BAD_RESULT: dict[str, Any] = {"kind": "bad-result", "retryable": False}  # it would again


def _failure(task: ClaimedTask, error: TaskError) -> TaskFailure:
    return TaskFailure(
        task.id,
        task.fencing_token,
        str(error) or type(error).__name__,
        error_kind=error.kind,
        retryable=error.retryable,
    )


def _task_id(item: object) -> str:
    if isinstance(item, ClaimedTask):
        return item.id
    if isinstance(item, TaskResult | TaskFailure):
        return item.task_id
    raise TypeError(type(item).__name__)
