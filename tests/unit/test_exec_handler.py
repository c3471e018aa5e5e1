"""``--exec``: real subprocesses, fed a payload on stdin, timed out and killed as a group."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import psutil
import pytest

from runtime.bot.exec_handler import ExecHandler, failure_kind
from runtime.bot.handlers import TaskError

PY = shlex.quote(sys.executable)


def python(code: str, *args: str) -> str:
    return " ".join([PY, "-c", shlex.quote(code), *map(shlex.quote, args)])


def test_stdout_json_is_the_result() -> None:
    echo = python("import json, sys; p = json.load(sys.stdin); print(json.dumps({'got': p}))")
    assert ExecHandler(echo)({"n": [1, 2, 3]}) == {"got": {"n": [1, 2, 3]}}


def test_stdout_that_is_not_json_is_a_string() -> None:
    assert ExecHandler(python("print('hello, hive')"))({}) == "hello, hive\n"


def test_a_large_payload_goes_through_stdin_without_stalling() -> None:
    # Bigger than a pipe buffer both ways: stdin must be fed while stdout is drained.
    payload = {"text": "x" * 300_000}
    echo = python("import sys; sys.stdout.write(sys.stdin.read())")
    assert ExecHandler(echo, timeout_s=20)(payload) == payload


def test_non_zero_exit_fails_with_the_tail_of_stderr() -> None:
    noisy = python("import sys; sys.stderr.write('a' * 5000 + 'the end'); sys.exit(3)")
    with pytest.raises(TaskError) as failure:
        ExecHandler(noisy)({})
    message = str(failure.value)
    assert message.startswith("exited with status 3: ")
    assert message.endswith("the end")
    assert len(message) == len("exited with status 3: ") + 2000
    assert (failure.value.kind, failure.value.retryable) == ("exit-3", True)


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (64, "bad-input", False),  # EX_USAGE
        (65, "bad-input", False),  # EX_DATAERR
        (75, "temporary", True),  # EX_TEMPFAIL
        (1, "exit-1", True),
        (2, "exit-2", True),
        (255, "exit-255", True),
    ],
)
def test_the_exit_status_says_the_failures_kind(status: int, kind: str, retryable: bool) -> None:
    with pytest.raises(TaskError) as failure:
        ExecHandler(python(f"import sys; sys.exit({status})"))({})
    assert (failure.value.kind, failure.value.retryable) == (kind, retryable)
    assert str(failure.value) == f"exited with status {status}"


def test_every_exit_status_maps_to_a_short_name() -> None:
    from domain.names import SHORT_NAME

    for status in [*range(-64, 0), *range(1, 256)]:
        kind, _ = failure_kind(status)
        assert SHORT_NAME.match(kind), status


def test_a_signal_death_is_named() -> None:
    with pytest.raises(TaskError, match="killed by SIGKILL") as failure:
        ExecHandler(python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))({})
    assert (failure.value.kind, failure.value.retryable) == ("signal", True)


def test_a_missing_command_fails_clearly() -> None:
    with pytest.raises(TaskError, match="cannot run '/nonexistent/apiary-tool'") as failure:
        ExecHandler("/nonexistent/apiary-tool --flag")({})
    assert (failure.value.kind, failure.value.retryable) == ("cannot-run", True)


def test_output_over_the_cap_fails_the_task() -> None:
    flood = python("import sys\nwhile True: sys.stdout.write('y' * 65536)")
    started = time.monotonic()
    with pytest.raises(TaskError, match="output exceeded 100000 bytes") as failure:
        ExecHandler(flood, timeout_s=30, max_output_bytes=100_000)({})
    assert (failure.value.kind, failure.value.retryable) == ("output-too-large", False)
    assert time.monotonic() - started < 10


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # The command starts a grandchild, writes both pids, then both wait forever.
    forever = python(
        "import subprocess, sys, os, threading\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import threading; "
        "threading.Event().wait()'])\n"
        "open(sys.argv[1], 'w').write(f'{os.getpid()} {child.pid}')\n"
        "threading.Event().wait()",
        str(pids),
    )
    timeout_s = 1.0
    started = time.monotonic()
    with pytest.raises(TaskError, match=r"^timed out after 1 s$") as failure:
        ExecHandler(forever, timeout_s=timeout_s)({})
    assert (failure.value.kind, failure.value.retryable) == ("timeout", True)
    elapsed = time.monotonic() - started
    assert timeout_s <= elapsed < timeout_s + 3.0
    command_pid, grandchild_pid = map(int, pids.read_text().split())
    for pid in (command_pid, grandchild_pid):
        assert _is_gone(pid, within_s=5.0), f"process {pid} survived the timeout"


def _is_gone(pid: int, within_s: float) -> bool:
    """Dead: no such process, or a zombie waiting for a parent that is not us."""
    try:
        process = psutil.Process(pid)
        process.wait(timeout=within_s)  # returns at once for a reaped or foreign zombie
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return process.status() == psutil.STATUS_ZOMBIE
    return True


def test_the_command_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="needs a command"):
        ExecHandler("   ")


def test_the_command_does_not_see_the_bots_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIARY_BOT_TOKEN", "apiary_secret")
    monkeypatch.setenv("APIARY_KEY", "apiary_secret")
    monkeypatch.setenv("MY_WORKER_SETTING", "kept")
    names = ["APIARY_BOT_TOKEN", "APIARY_KEY", "MY_WORKER_SETTING"]
    show = python(
        "import json, os, sys; print(json.dumps([os.environ.get(n) for n in sys.argv[1:]]))", *names
    )
    assert ExecHandler(show)({}) == [None, None, "kept"]
