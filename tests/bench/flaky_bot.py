"""`apiary bot` for the retry drain: the bundled bot, whose no-op fails the first attempt of
one task in ten (a temporary failure, so the hive's retry policy tries it again).

The task is chosen by its payload (``{"n": i}``, ``i`` a multiple of ``FAIL_EVERY``); its
first attempt is its first assignment (fencing token 1): the claim says no attempt
number, and nothing in a drain loses a task before its start. Every other claim gets the
bundled handler itself, so the tasks that never fail run exactly as in the plain drain.

Run as ``python -m tests.bench.flaky_bot bot --name N --capabilities noop ...`` (the
arguments of ``apiary bot``); ``start_flaky_bot`` launches it as ``start_bot`` does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from api import cli
from runtime.bot import JSON, handlers
from runtime.bot import cli as bot_cli
from runtime.bot.client import ClaimedTask
from runtime.bot.handlers import Handler, TaskError
from tests.e2e.harness import Bot, Hive, start_bot

FAIL_EVERY = 10


def fails_first(payload: JSON) -> bool:
    """The tasks of the drain whose first attempt fails: one in ``FAIL_EVERY``."""
    n = payload.get("n") if isinstance(payload, dict) else None
    return isinstance(n, int) and n % FAIL_EVERY == 0


def busy(_payload: JSON) -> JSON:
    raise TaskError("busy: the first attempt of a chosen task fails (bench)", kind="temporary")


def handler_for(
    task: ClaimedTask,
    bundled: Callable[[ClaimedTask], Handler] = bot_cli.builtin_handler_for,
) -> Handler:
    if task.fencing_token == 1 and fails_first(task.payload):
        return busy
    return bundled(task)


def start_flaky_bot(hive: Hive, token: str, name: str, *args: str) -> Bot:
    return start_bot(hive, token, name, *args, main="tests.bench.flaky_bot")


if __name__ == "__main__":
    bot_cli.builtin_handler_for = handler_for  # what `apiary bot` asks for each claim
    # The failing no-op is as cheap as the no-op: run on the claim thread as it is, not
    # started and pooled (which would measure the bot's pool, not the hive's retries).
    handlers.INLINE = handlers.INLINE | {busy}
    sys.exit(cli.main())
