"""A bot and the process that started it: the bot dies with it, in every phase of its life.

``apiary serve`` (its demo bots) and the autoscaler's local launcher start bots as child
processes. If that process dies, even by ``kill -9``, its bots must not live on: retrying
to register against a port a new server may take, or working for a hive that is gone.

- **The parent** starts each bot with ``Spawner``: from one long-lived thread of its own
  (Linux ties a child to the *thread* that forked it, so a bot forked by a loop's thread
  would be signalled when that thread ends), with ``tied_env``: its own pid in
  ``APIARY_PARENT_PID``, and the command ``bot_command`` (``python -m api.launched_bot``),
  which holds on before the heavy imports.
- **The bot** calls ``hold`` first thing: on Linux the kernel will send it SIGTERM when its
  parent dies (``prctl(PR_SET_PDEATHSIG)``), and it compares ``getppid()`` with the pid it
  was given, which closes the race where the parent died before the ``prctl``: it exits at
  once. Then ``watch`` polls for the parent (the portable fallback, and the bound on a
  graceful stop): gone, it stops the worker and exits after a grace period, whatever the
  worker is doing (importing, registering against a hive that is gone, working, stopping).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

EXIT_WITH_PARENT_ENV = "APIARY_EXIT_WITH_PARENT"
PARENT_PID_ENV = "APIARY_PARENT_PID"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
ENTRY_MODULE = "api.launched_bot"


def tied_env(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus what ties a bot to this process (it dies with it)."""
    return {**base, EXIT_WITH_PARENT_ENV: "1", PARENT_PID_ENV: str(os.getpid())}


def bot_command(args: Sequence[str]) -> list[str]:
    """The command line of a tied bot: ``apiary bot`` with ``args``."""
    return [sys.executable, "-m", ENTRY_MODULE, *args]


class Spawner:
    """Starts bot processes from one thread that lives until ``close`` (after the bots it
    started have been stopped), so no thread's end signals them early."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="apiary-spawner")

    def popen(
        self, args: list[str], env: Mapping[str, str], **options: object
    ) -> subprocess.Popen[bytes]:
        """``subprocess.Popen`` on the spawner's thread; raises what it raises (OSError)."""

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(args, env=env, **options)  # type: ignore[call-overload, no-any-return]

        try:
            started = self._thread.submit(start)
        except RuntimeError as e:  # closed: whoever asks late is told it cannot start
            raise OSError("the spawner is closed") from e
        return started.result()

    def close(self) -> None:
        self._thread.shutdown()


def parent_of(environ: Mapping[str, str]) -> int | None:
    """The pid of the process this bot must die with; None when it is not tied to one. A
    tie without a valid pid (an older launcher) is to the parent it has now."""
    if environ.get(EXIT_WITH_PARENT_ENV) != "1":
        return None
    given = environ.get(PARENT_PID_ENV, "")
    return int(given) if given.isdigit() and int(given) > 1 else os.getppid()


def hold(parent: int) -> bool:
    """Ask the kernel (Linux) for SIGTERM when the parent dies; False if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning(
                "could not ask to die with the parent; watching it instead",
                extra={"action": "parent_tie", "errno": ctypes.get_errno()},
            )
    return os.getppid() == parent


def watch(
    parent: int, stop: Callable[[], None], *, interval_s: float = 1.0, grace_s: float = 5.0
) -> threading.Thread:
    """Once ``parent`` is gone: ``stop()``, then exit after ``grace_s`` at the latest. The
    hive most likely went with it, so reports and deregistration may never land (the hive
    finds the bot lost and re-runs what it held)."""

    def look() -> None:
        pace = threading.Event()
        while os.getppid() == parent:
            pace.wait(interval_s)  # pacing between looks at the parent
        log.info("parent gone; stopping", extra={"action": "parent_gone", "parent": parent})
        stop()
        pace.wait(grace_s)
        os._exit(0)

    thread = threading.Thread(target=look, name="apiary-parent-watch", daemon=True)
    thread.start()
    return thread
