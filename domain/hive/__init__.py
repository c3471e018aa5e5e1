"""The Hive: one event-sourced application, the only way anything in the hive changes.

Every command loads what it needs from the log, asks the aggregates to decide, and saves
all resulting events in one ``save()`` (one transaction, one table lock). Batches are the
rule, not the exception: a bulk submit, a round of dispatch or a bot's report of many
tasks is one transaction. Conflicts with concurrent writers (optimistic concurrency on
aggregate versions) are retried from a fresh load; a rule broken by any item refuses the
whole batch, so a refused command never leaves half its events behind.

The commands live by room, one mixin each (tasks, bots, keys, schedules, scaling,
messages); all share the load-decide-save of ``domain.hive.commands`` and the reads of
``domain.hive.application``. ``Hive`` is the one Application made of them.
"""

from __future__ import annotations

from domain.hive.application import utc_now
from domain.hive.bots import BotCommands
from domain.hive.commands import MAX_ATTEMPTS, Committed
from domain.hive.keys import IssuedKey, KeyCommands
from domain.hive.messages import MessageCommands, MessageSpec
from domain.hive.scaling import ScalingCommands
from domain.hive.schedules import ScheduleCommands
from domain.hive.tasks import IDEMPOTENCY_NAMESPACE, Report, Submission, TaskCommands, TaskSpec

__all__ = [
    "IDEMPOTENCY_NAMESPACE",
    "MAX_ATTEMPTS",
    "Committed",
    "Hive",
    "IssuedKey",
    "MessageSpec",
    "Report",
    "Submission",
    "TaskSpec",
    "utc_now",
]


class Hive(
    TaskCommands,
    BotCommands,
    KeyCommands,
    ScheduleCommands,
    ScalingCommands,
    MessageCommands,
):
    """The one eventsourcing Application of the hive: every room's commands."""

    name = "Hive"
