"""``apiary bot --exec CMD``: every task runs an external command.

The command is split like a shell would (``shlex``) but run without one, in a session
(and so a process group) of its own. The payload goes to its stdin as JSON; its stdout
is the result (JSON when it parses, else the text as a JSON string). Exit status 0 is
success; anything else fails the task with the tail of stderr, and a kind the exit status
says (``failure_kind``: the sysexits codes for bad input and a temporary failure, a
signal, or ``exit-N``) for the hive's retry policy. When the deadline passes or stdout
grows past the cap, the whole process group is killed and the task fails.
The command inherits the bot's environment, less its keys (``KEPT_FROM_COMMAND``): a task's
command has no business enrolling bots. The contract for users: docs/bots.md.
"""

from __future__ import annotations

import logging
import os
import selectors
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass

import orjson

from runtime.bot import JSON
from runtime.bot.handlers import BAD_INPUT, TaskError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
MAX_OUTPUT_BYTES = 1 << 20
STDERR_TAIL_CHARS = 2000
_READ_CHUNK = 1 << 16
_WRITE_CHUNK = 1 << 16
KEPT_FROM_COMMAND = frozenset({"APIARY_BOT_TOKEN", "APIARY_KEY"})
"""Environment variables that may hold the bot's key: the command does not see them."""
EX_USAGE, EX_DATAERR, EX_TEMPFAIL = 64, 65, 75  # sysexits.h
TIMEOUT, OUTPUT_TOO_LARGE, CANNOT_RUN = "timeout", "output-too-large", "cannot-run"


def failure_kind(returncode: int) -> tuple[str, bool]:
    """What a command's non-zero exit status (negative: the signal that killed it) says:
    the failure's kind, and whether another attempt may go better. The table users read
    is in docs/bots.md."""
    if returncode < 0:
        return "signal", True
    if returncode in (EX_USAGE, EX_DATAERR):
        return BAD_INPUT, False
    if returncode == EX_TEMPFAIL:
        return "temporary", True
    return f"exit-{returncode}", True


@dataclass(frozen=True)
class Finished:
    """How one run of the command ended."""

    returncode: int | None  # None: it was killed by us (timeout or too much output)
    stdout: bytes
    stderr_tail: str
    timed_out: bool = False
    overflowed: bool = False


class ExecHandler:
    """A ``Handler`` that runs ``command`` once per task."""

    def __init__(
        self,
        command: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
    ) -> None:
        argv = shlex.split(command)
        if not argv:
            raise ValueError("--exec needs a command")
        if timeout_s <= 0:
            raise ValueError("the exec timeout must be positive")
        self.argv = argv
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes

    def __call__(self, payload: JSON) -> JSON:
        finished = run_command(
            self.argv, orjson.dumps(payload), self.timeout_s, self.max_output_bytes
        )
        if finished.timed_out:
            raise TaskError(f"timed out after {self.timeout_s:g} s", kind=TIMEOUT)
        if finished.overflowed:
            too_much = f"output exceeded {self.max_output_bytes} bytes"
            raise TaskError(too_much, kind=OUTPUT_TOO_LARGE, retryable=False)
        if finished.returncode:
            kind, retryable = failure_kind(finished.returncode)
            raise TaskError(_exit_message(finished), kind=kind, retryable=retryable)
        try:
            result: JSON = orjson.loads(finished.stdout)
        except orjson.JSONDecodeError:
            result = finished.stdout.decode("utf-8", errors="replace")
        return result


def _exit_message(finished: Finished) -> str:
    code = finished.returncode
    if code is not None and code < 0:
        try:
            status = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            status = f"killed by signal {-code}"
    else:
        status = f"exited with status {code}"
    return f"{status}: {finished.stderr_tail}" if finished.stderr_tail else status


def run_command(argv: list[str], stdin: bytes, timeout_s: float, max_output_bytes: int) -> Finished:
    """Runs ``argv`` to the end, the deadline or the output cap, whichever comes first.

    Feeds stdin and drains stdout/stderr together (no pipe can fill and stall the
    child), keeping at most ``max_output_bytes`` of stdout and the last few KiB of stderr.
    """
    deadline = time.monotonic() + timeout_s
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if k not in KEPT_FROM_COMMAND},
        )
    except OSError as e:
        cannot = f"cannot run {argv[0]!r}: {e.strerror or e}"
        raise TaskError(cannot, kind=CANNOT_RUN) from None
    assert process.stdin and process.stdout and process.stderr  # PIPE on all three
    stdout = bytearray()
    stderr = bytearray()
    timed_out = overflowed = False
    with selectors.DefaultSelector() as selector:
        for pipe in (process.stdin, process.stdout, process.stderr):
            os.set_blocking(pipe.fileno(), False)
        if stdin:
            selector.register(process.stdin, selectors.EVENT_WRITE)
        else:
            process.stdin.close()
        selector.register(process.stdout, selectors.EVENT_READ)
        selector.register(process.stderr, selectors.EVENT_READ)
        written = 0
        try:
            while selector.get_map() and not overflowed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _ in selector.select(remaining):
                    ready = key.fileobj
                    if ready is process.stdin:
                        try:
                            written += os.write(key.fd, stdin[written : written + _WRITE_CHUNK])
                        except BrokenPipeError:
                            written = len(stdin)  # it stopped reading: fine
                        if written >= len(stdin):
                            selector.unregister(ready)
                            process.stdin.close()
                        continue
                    data = os.read(key.fd, _READ_CHUNK)
                    if not data:
                        selector.unregister(ready)
                        continue
                    if ready is process.stdout:
                        stdout += data
                        if len(stdout) > max_output_bytes:
                            overflowed = True
                            break
                    else:
                        stderr += data
                        del stderr[: -4 * STDERR_TAIL_CHARS]
            if not (timed_out or overflowed):
                try:
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
        finally:
            if timed_out or overflowed or process.returncode is None:
                _kill_group(process)
            for pipe in (process.stdin, process.stdout, process.stderr):
                pipe.close()
    tail = stderr.decode("utf-8", errors="replace")[-STDERR_TAIL_CHARS:].strip()
    if timed_out or overflowed:
        return Finished(None, b"", tail, timed_out=timed_out, overflowed=overflowed)
    return Finished(process.returncode, bytes(stdout), tail)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the command's whole process group, then reap the command.

    Called before the leader is reaped, so the group id cannot have been reused.
    """
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        log.warning(
            "could not kill the command's process group",
            extra={"action": "exec.kill", "pid": process.pid},
        )
    process.wait()
