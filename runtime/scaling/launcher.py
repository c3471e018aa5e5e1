"""The launcher port, and its local implementation: bots as child OS processes.

The autoscaler asks a launcher to start a bot for a pool under a launch id, to stop one
(gracefully: SIGTERM, the bot finishes what it holds and deregisters; SIGKILL after a
grace period) and which of its processes have exited. The bot learns its pool and launch
id from its environment and names them when it registers, which closes the loop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from runtime.bot.parent import Spawner, bot_command, tied_env


@dataclass(frozen=True)
class BotTemplate:
    """What a pool's bot process is started with."""

    pool: str
    capabilities: Sequence[str]
    max_concurrency: int
    exec_command: str | None = None
    messages: bool = False  # claims and acknowledges messages (``--messages``)


class Launcher(Protocol):
    name: str  # recorded on each launch: which engine owns the process

    def launch(self, launch_id: UUID, template: BotTemplate) -> None:
        """Start one bot process; raises OSError when it cannot be started."""
        ...

    def stop(self, launch_id: UUID, *, kill: bool = False) -> None:
        """Ask it to stop (idempotent); ``kill`` stops it at once."""
        ...

    def exited(self) -> dict[UUID, int | None]:
        """Launches whose process has exited since the last call, with exit codes."""
        ...

    def owns(self, launch_id: UUID) -> bool: ...

    def close(self) -> None:
        """Stop every process it started and wait for them."""
        ...


class LocalProcessLauncher:
    """``apiary bot`` processes on this machine, each in its own session, tied to this
    process (``runtime/bot/parent.py``): none outlives a crashed engine, whatever phase it
    is in. They are started from the launcher's own thread (the autoscaler's loop thread
    may end before they are stopped)."""

    def __init__(self, hive_url: str, enrolment_token: str, *, stop_grace_s: float = 15.0) -> None:
        self.name = f"local:{os.uname().nodename}:{os.getpid()}"
        self.hive_url = hive_url
        self.stop_grace_s = stop_grace_s
        self._env = tied_env(
            {
                **os.environ,
                "APIARY_HIVE_URL": hive_url,
                "APIARY_BOT_TOKEN": enrolment_token,  # in the environment, not a command line
            }
        )
        self._spawner = Spawner()
        self._procs: dict[UUID, subprocess.Popen[bytes]] = {}
        self._stop_asked: dict[UUID, float] = {}
        self._lock = threading.Lock()

    def launch(self, launch_id: UUID, template: BotTemplate) -> None:
        args = [
            "--capabilities",
            ",".join(template.capabilities),
            "--max-concurrency",
            str(template.max_concurrency),
            "--name",
            f"{template.pool}-{launch_id.hex[:8]}",
            "--pool",
            template.pool,
            "--launch-id",
            str(launch_id),
        ]
        if template.exec_command is not None:
            args += ["--exec", template.exec_command]
        if template.messages:
            args.append("--messages")
        proc = self._spawner.popen(bot_command(args), self._env, start_new_session=True)
        with self._lock:
            self._procs[launch_id] = proc

    def stop(self, launch_id: UUID, *, kill: bool = False) -> None:
        with self._lock:
            proc = self._procs.get(launch_id)
            if proc is None or proc.poll() is not None:
                return
            if kill:
                proc.kill()
            elif launch_id not in self._stop_asked:
                self._stop_asked[launch_id] = time.monotonic()
                proc.send_signal(signal.SIGTERM)

    def exited(self) -> dict[UUID, int | None]:
        out: dict[UUID, int | None] = {}
        with self._lock:
            now = time.monotonic()
            for launch_id, proc in list(self._procs.items()):
                code = proc.poll()
                if code is None:
                    asked = self._stop_asked.get(launch_id)
                    if asked is not None and now - asked > self.stop_grace_s:
                        proc.kill()  # it had its grace period
                    continue
                out[launch_id] = code
                del self._procs[launch_id]
                self._stop_asked.pop(launch_id, None)
        return out

    def owns(self, launch_id: UUID) -> bool:
        with self._lock:
            return launch_id in self._procs

    def pid(self, launch_id: UUID) -> int | None:
        with self._lock:
            proc = self._procs.get(launch_id)
            return None if proc is None else proc.pid

    def close(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._spawner.close()
