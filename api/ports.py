"""What the HTTP layer needs from the rest of the process, as ports it can be built against.

The views (task, fleet and schedule reads, read-your-writes), the claim long-poll, bot liveness and
readiness are implemented elsewhere; the API only knows these shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from domain.cause import Cause
from domain.hive import Committed, MessageSpec
from domain.messages import Message
from projections.dashboard_reads import ListedTasks
from projections.key_reads import KeyFilter, KeyRow
from projections.message_reads import MessageRow
from projections.process_stats import TimingsWindow
from projections.redrive_reads import RedriveFilter
from projections.rows import BotFilter, BotRow, ScheduleRow, TaskFilter, TaskRow
from projections.stage_reads import MinuteCount, StageHistogram
from runtime.claims import ClaimedTask
from runtime.profiler import Profile
from store.processes import ProcessRow


class TaskReads(Protocol):
    def get(self, task_id: UUID) -> TaskRow | None: ...

    def list(
        self, flt: TaskFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[TaskRow], str | None]:
        """One keyset page, oldest first, and the cursor of the next; ValueError on a bad
        cursor."""
        ...


class FleetReads(Protocol):
    def list(
        self, flt: BotFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[BotRow], str | None]:
        """One keyset page in registration order, and the cursor of the next; ValueError
        on a bad cursor."""
        ...

    def get(self, bot_id: UUID) -> BotRow | None: ...


class RedriveFinder(Protocol):
    def find(self, flt: RedriveFilter, limit: int) -> list[UUID]:
        """Finished tasks that ``flt`` names, oldest finish first, at most ``limit``."""
        ...


class ScheduleReads(Protocol):
    def get(self, schedule_id: UUID) -> ScheduleRow | None: ...

    def list(
        self, state: str | None, *, limit: int, cursor: str | None
    ) -> tuple[list[ScheduleRow], str | None]:
        """One keyset page, oldest first; ValueError on a bad cursor."""
        ...

    def runs_by_state(self, schedule_ids: Sequence[UUID], last: int) -> dict[UUID, dict[str, int]]:
        """Per schedule, its ``last`` runs (tasks) by state."""
        ...


class PositionWaiter(Protocol):
    def wait(self, position: int, timeout: float) -> bool:
        """True once the views have applied ``position``; False after ``timeout`` seconds."""
        ...


class ClaimBoard(Protocol):
    async def claim(self, bot_id: UUID, max_tasks: int, wait_s: float) -> list[ClaimedTask]:
        """The bot's assigned, unstarted tasks; waits up to ``wait_s`` for at least one."""
        ...


class MessageReads(Protocol):
    def conversation(
        self, name: str, *, limit: int, cursor: str | None, bot: UUID | None = None
    ) -> tuple[list[MessageRow], str | None]:
        """One keyset page of a conversation, in send order; ValueError on a bad cursor.
        With ``bot``, only that bot's messages (sent by it, to it or routed to it)."""
        ...

    def latest(
        self, *, limit: int, cursor: str | None, bot: UUID | None = None
    ) -> tuple[list[MessageRow], str | None]:
        """One keyset page of all messages, newest first; ValueError on a bad cursor. With
        ``bot``, only that bot's messages."""
        ...

    def by_state(self) -> dict[str, int]: ...

    def dead_letters(self, limit: int) -> list[MessageRow]:
        """The newest dead letters first."""
        ...


class MessageClaims(Protocol):
    @property
    def closing(self) -> bool: ...

    async def claim(
        self, bot_id: UUID, max_messages: int, wait_s: float, cause: Cause
    ) -> list[Message]:
        """Hand the bot the messages it may have now; waits up to ``wait_s`` for one."""
        ...


class MessageSender(Protocol):
    def send(self, spec: MessageSpec, cause: Cause) -> Committed[Message]:
        """Send, routed to recipients picked from what is live now."""
        ...


class Liveness(Protocol):
    def renew(self, bot_id: UUID, ttl_s: float, config_version: int | None = None) -> datetime:
        """Extend the bot's lease; returns when it now expires."""
        ...

    def forget(self, bot_id: UUID) -> None: ...


class BotPresence(Protocol):
    def is_live(self, bot_id: UUID) -> bool:
        """Registered and not lost or deregistered, as far as this process has heard."""
        ...

    def bots_in_pool(self, pool: str) -> int:
        """How many live bots belong to ``pool``, as far as this process has heard."""
        ...


class ProcessReads(Protocol):
    def live(self) -> list[ProcessRow]:
        """The hive's processes heard from lately, oldest first."""
        ...


class ProcessTimingReads(Protocol):
    def window(self, seconds: float) -> TimingsWindow:
        """Every process's timings over the minutes overlapping the last ``seconds``."""
        ...


class Readiness(Protocol):
    def check(self) -> dict[str, str]:
        """Component -> "ok" or a short reason; ready when every value is "ok"."""
        ...


class ScalingReads(Protocol):
    def pools(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Per pool: desired, reason, inputs, resized_at, and bots (state -> count)."""
        ...

    def launches(self, pool: str, limit: int) -> list[dict[str, Any]]:
        """The pool's launches, newest first."""
        ...


class DashboardReads(Protocol):
    def overview(self, failures: int = 10) -> dict[str, Any]:
        """Tasks by state, the pending queue by type and priority, the fleet by state and
        version, recent failures and the views' positions."""
        ...

    def bot_details(self, tasks: int = 5) -> dict[Any, dict[str, Any]]:
        """Per live bot: its learned success rate and the tasks it holds now."""
        ...

    def tasks(
        self, flt: ListedTasks, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of tasks, newest first; ValueError on a bad cursor."""
        ...

    def dead_letters(
        self, flt: RedriveFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of dead tasks, the newest dead first; ValueError on a bad cursor."""
        ...

    def latest_runs(
        self, schedule_ids: Sequence[UUID], last: int
    ) -> dict[UUID, list[dict[str, Any]]]:
        """Per schedule, its ``last`` runs, newest first, with their state and attempt."""
        ...


class History(Protocol):
    def of(self, aggregate_id: UUID, limit: int = 1000) -> list[Any]:
        """The aggregate's events from the log, each with its actor and chain hash."""
        ...

    def at(self, positions: list[int]) -> list[Any]:
        """The events at these log positions (records that name an aggregate), likewise."""
        ...

    def events(self, aggregate_id: UUID, up_to_version: int) -> list[Any]:
        """The aggregate's events up to a version, decoded whole, oldest first."""
        ...

    def made(self, aggregate_ids: list[UUID]) -> dict[UUID, Any]:
        """The event that made each of these aggregates (records an event names), decoded."""
        ...


class StageReads(Protocol):
    def histograms(self) -> list[StageHistogram]:
        """Per task type and stage, the bucket counts, count and sum."""
        ...

    def minutes(self, last: int, now: datetime) -> list[MinuteCount]:
        """Per type, the minutes among the ``last`` up to ``now`` in which tasks ended."""
        ...


class ProfileReport(Protocol):
    def report(self, window_s: float) -> Profile:
        """The bottleneck report over the last ``window_s`` seconds."""
        ...


class Metrics(Protocol):
    content_type: str

    def render(self) -> bytes:
        """One scrape, in Prometheus' text format."""
        ...


class KeyReads(Protocol):
    def list(
        self, flt: KeyFilter, *, now: datetime, limit: int, cursor: str | None
    ) -> tuple[list[KeyRow], str | None]:
        """One keyset page, oldest first (usable at ``now`` only, unless the filter says
        otherwise); ValueError on a bad cursor."""
        ...

    def last_used(self, key_id: UUID) -> datetime | None: ...
