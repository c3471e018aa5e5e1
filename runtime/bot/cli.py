"""``apiary bot run`` (or ``apiary bot`` with these options): one bot worker until
SIGTERM/SIGINT.

The first signal stops claiming and lets the worker finish, report and deregister (exit
0); a second one exits at once. The hive and the key follow every command's convention
(``--url``/``APIARY_URL``, ``--key``/``APIARY_KEY``); the bot's own names of before stay
as aliases (``--hive``/``APIARY_HIVE_URL``, ``--token``/``APIARY_BOT_TOKEN``), and the
bot's names are read first, so a shell that keeps an operator's key in ``APIARY_KEY`` and
a bot's enrolment key in ``APIARY_BOT_TOKEN`` runs both as before. The key is never
printed or logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable
from functools import partial
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from types import FrameType
from uuid import UUID

from domain.names import MAX_CAPABILITIES, SHORT_NAME
from runtime.bot.client import ClaimedTask, HiveClient
from runtime.bot.exec_handler import DEFAULT_TIMEOUT_S, ExecHandler
from runtime.bot.handlers import HANDLERS, Handler, TaskError
from runtime.bot.messenger import Messenger, log_message, relay
from runtime.bot.parent import hold, parent_of, watch
from runtime.bot.worker import BotWorker

log = logging.getLogger(__name__)

HIVE_URL_ENV = "APIARY_HIVE_URL"
TOKEN_ENV = "APIARY_BOT_TOKEN"
URL_ENVS = (HIVE_URL_ENV, "APIARY_URL")  # the first one set is taken
KEY_ENVS = (TOKEN_ENV, "APIARY_KEY")
POOL_ENV = "APIARY_BOT_POOL"
LAUNCH_ID_ENV = "APIARY_LAUNCH_ID"
DEFAULT_MAX_CONCURRENCY = 4
MAX_CONCURRENCY = 10_000
MAX_VERSION_CHARS = 64


def add_bot_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The options of a bot run; ``required=False`` where they share a parser with other
    commands (``apiary bot`` alone), and ``run_bot`` then checks ``--capabilities``."""
    parser.add_argument(
        "--messages",
        action="store_true",
        help="receive messages too: each is logged (never its body) and acknowledged; "
        "only a bot started with it is sent messages",
    )
    parser.add_argument(
        "--url",
        "--hive",
        dest="url",
        metavar="URL",
        default=None,
        help=f"the hive's base URL (default: ${URL_ENVS[0]}, else ${URL_ENVS[1]})",
    )
    parser.add_argument(
        "--key",
        "--token",
        dest="key",
        metavar="KEY",
        default=None,
        help=f"an enrolment key (role bot) (default: ${KEY_ENVS[0]}, else ${KEY_ENVS[1]})",
    )
    parser.add_argument(
        "--capabilities",
        metavar="A,B",
        required=required,
        type=capabilities_arg,
        help="comma-separated capabilities, e.g. code,analysis (required)",
    )
    parser.add_argument(
        "--name", default=None, help="the bot's short name (default: bot-<host>-<pid>)"
    )
    parser.add_argument(
        "--max-concurrency",
        metavar="N",
        type=_bounded_int(1, MAX_CONCURRENCY),
        default=DEFAULT_MAX_CONCURRENCY,
        help=f"tasks run at once (default: {DEFAULT_MAX_CONCURRENCY})",
    )
    parser.add_argument(
        "--version",
        dest="bot_version",
        metavar="LABEL",
        default=None,
        help="the version label the hive records (default: the package version)",
    )
    parser.add_argument(
        "--pool",
        metavar="NAME",
        default=os.environ.get(POOL_ENV),
        help=f"the scaling pool this bot belongs to (default: ${POOL_ENV})",
    )
    parser.add_argument(
        "--launch-id",
        metavar="UUID",
        type=_uuid_arg,
        default=os.environ.get(LAUNCH_ID_ENV),
        help=f"the launch that started this bot; set by the launcher (default: ${LAUNCH_ID_ENV})",
    )
    parser.add_argument(
        "--exec",
        dest="exec_command",
        metavar="CMD",
        default=None,
        help="run CMD for every task: payload JSON on stdin, result on stdout",
    )
    parser.add_argument(
        "--exec-timeout",
        metavar="S",
        type=_positive_float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds before CMD's process group is killed (default: {DEFAULT_TIMEOUT_S:g})",
    )


def run_bot(args: argparse.Namespace) -> int:
    parent = parent_of(os.environ)  # a bot a process of the hive started dies with it
    if parent is not None and not hold(parent):
        return 0  # it is gone already
    _configure_logging()
    hive, token = hive_and_key(args)
    if not hive:
        return _usage(f"no hive: pass --url URL or set {' or '.join(URL_ENVS)}")
    if not token:
        return _usage(f"no key: pass --key or set {' or '.join(KEY_ENVS)}")
    if not args.capabilities:
        return _usage("--capabilities is required to run a bot")
    try:
        name = bot_name(args.name)
        handler_for = (
            exec_handler_for(ExecHandler(args.exec_command, args.exec_timeout))
            if args.exec_command is not None
            else with_relay(builtin_handler_for, lambda: worker.messenger)
        )
    except ValueError as e:
        return _usage(str(e))
    version = args.bot_version or apiary_version()
    if len(version) > MAX_VERSION_CHARS:
        return _usage(f"--version must be at most {MAX_VERSION_CHARS} characters")
    with HiveClient(hive, token, user_agent=f"apiary-bot/{apiary_version()}") as client:
        worker = BotWorker(
            client,
            args.capabilities,
            name,
            args.max_concurrency,
            version,
            handler_for,
            pool=args.pool,
            launch_id=None if args.launch_id is None else str(args.launch_id),
            on_message=log_message if args.messages else None,
        )
        if parent is not None:
            watch(parent, worker.stop)  # before registering: every phase is covered
        return serve(worker)


def serve(worker: BotWorker) -> int:
    """Runs ``worker`` on a thread of its own while this (main) thread handles signals.

    A signal may be delivered to any thread, but Python runs its handler on the main
    thread only once that thread wakes: so the main thread sleeps in a read of the
    signal wakeup pipe, which the C-level handler writes to whichever thread it lands on,
    and which the worker's thread also writes to when it ends.
    """
    if threading.current_thread() is not threading.main_thread():
        return worker.run()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    finished = threading.Event()
    exit_code: list[int] = []

    def work() -> None:
        try:
            exit_code.append(worker.run())
        finally:
            finished.set()
            os.write(wake_write, b"\0")

    signals_seen: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals_seen.append(signum)
        if len(signals_seen) > 1:
            os._exit(128 + signum)  # the second signal: now, whatever is in hand
        log.info(
            "signal received: finishing tasks in hand (again to exit at once)",
            extra={"action": "signal", "signal": signal.Signals(signum).name},
        )
        worker.stop()

    runner = threading.Thread(target=work, name="apiary-bot", daemon=True)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    previous_wakeup = signal.set_wakeup_fd(wake_write)
    try:
        runner.start()
        while not finished.is_set():
            os.read(wake_read, 64)  # handlers run as soon as this returns
        runner.join()
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        for s, handler in previous.items():
            signal.signal(s, handler)
        os.close(wake_read)
        os.close(wake_write)
    return exit_code[0] if exit_code else 1


# -- handlers -----------------------------------------------------------------------------


def builtin_handler_for(task: ClaimedTask) -> Handler:
    handler = HANDLERS.get(task.type)
    if handler is None:
        raise TaskError(
            f"no handler for task type {task.type!r}: this bot runs "
            f"{', '.join(sorted(HANDLERS))} (or start it with --exec)",
            kind="no-handler",
            retryable=False,
        )
    return handler


def with_relay(
    handler_for: Callable[[ClaimedTask], Handler], messenger: Callable[[], Messenger]
) -> Callable[[ClaimedTask], Handler]:
    """Adds the ``message`` task type: its payload is sent on as a message (``relay``)."""

    def choose(task: ClaimedTask) -> Handler:
        return partial(relay, messenger()) if task.type == "message" else handler_for(task)

    return choose


def exec_handler_for(handler: ExecHandler) -> Callable[[ClaimedTask], Handler]:
    def every_task(_task: ClaimedTask) -> Handler:
        return handler

    return every_task


# -- arguments ----------------------------------------------------------------------------


def capabilities_arg(value: str) -> list[str]:
    names = sorted({v.strip() for v in value.split(",") if v.strip()})
    if not names:
        raise argparse.ArgumentTypeError("at least one capability is required")
    if len(names) > MAX_CAPABILITIES:
        raise argparse.ArgumentTypeError(f"at most {MAX_CAPABILITIES} capabilities")
    bad = [n for n in names if not SHORT_NAME.match(n)]
    if bad:
        raise argparse.ArgumentTypeError(
            f"not short names (lowercase, start with a letter, [a-z0-9_.-]): {', '.join(bad)}"
        )
    return names


def bot_name(given: str | None) -> str:
    """``given`` lowercased, or ``bot-<host>-<pid>`` made into a short name."""
    if given is not None:
        name = given.lower()
        if not SHORT_NAME.match(name):
            raise ValueError(
                f"--name must be a short name: lowercase letters, digits, '_', '.', '-', "
                f"starting with a letter, at most 64 characters (got {given!r})"
            )
        return name
    host = re.sub(r"[^a-z0-9_.-]+", "-", socket.gethostname().lower()).strip("-.") or "host"
    pid = str(os.getpid())
    return f"bot-{host[: 64 - len('bot-') - len(pid) - 1]}-{pid}"


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}")
        return number

    return parse


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return number


def _uuid_arg(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value!r}") from None


def apiary_version() -> str:
    try:
        return package_version("apiary")
    except PackageNotFoundError:
        return "unknown"


def hive_and_key(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The hive's URL and the key: the options, else the environment (``URL_ENVS``,
    ``KEY_ENVS``: the first one set)."""
    return args.url or _first_set(URL_ENVS), args.key or _first_set(KEY_ENVS)


def _first_set(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def _usage(message: str) -> int:
    print(f"apiary bot: {message}", file=sys.stderr)
    return 2


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
