"""Bots die with the process that started them, in every phase of their life (issue 11,
finding 9): serve's demo bots and the autoscaler's pool bots, killed with -9 while the
bots import, register (against a hive that is not there) or work; and a restarted serve
never shows a demo bot twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from runtime.bot.parent import Spawner
from tests.e2e.harness import REPO, Hive, free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

GONE_WITHIN_S = 15.0  # a second's look at the parent, 5 s of grace, and a busy machine
LIVE = ("ready", "draining", "quarantined")


def demo_bots(hive: Hive, count: int) -> list[psutil.Process]:
    assert hive.proc is not None
    parent = psutil.Process(hive.proc.pid)

    def started() -> list[psutil.Process]:
        bots = [p for p in parent.children() if "--capabilities" in p.cmdline()]
        return bots if len(bots) == count else []

    return wait_for(started, timeout=30, what=f"{count} demo bot processes")


def registering(bot: psutil.Process) -> bool:
    """Past its imports and the tie to its parent, in the worker's registration: the
    parent watch and the worker run on threads of their own by then."""
    try:
        return bot.num_threads() >= 3
    except psutil.NoSuchProcess:
        return False


def assert_all_gone(bots: list[psutil.Process]) -> None:
    _gone, alive = psutil.wait_procs(bots, timeout=GONE_WITHIN_S)
    for p in alive:
        p.kill()
    assert not alive, f"{len(alive)} bot(s) outlived their parent: {[p.pid for p in alive]}"


@pytest.mark.parametrize("phase", ["importing", "registering"])
def test_demo_bots_die_with_a_server_killed_before_they_registered(
    make_hive: Callable[..., Hive], phase: str
) -> None:
    """Their hive URL is a port nothing listens on, so they never register; serve is killed
    at once (they are importing) or once each is in its registration's retry loop."""
    hive = make_hive(APIARY_HIVE_URL=f"http://127.0.0.1:{free_port()}")
    hive.start("--demo-bots", "3")
    bots = demo_bots(hive, 3)
    if phase == "registering":
        wait_for(lambda: all(registering(b) for b in bots), timeout=60, what="registering")
    hive.kill9()
    assert_all_gone(bots)


def test_demo_bots_die_with_a_server_killed_while_they_work(hive: Hive) -> None:
    hive.start("--demo-bots", "3")
    client = hive.client(hive.key("client"))
    wait_for(
        lambda: len(client.get("/v1/bots").json()["items"]) == 3, timeout=60, what="registered"
    )
    bots = demo_bots(hive, 3)
    hive.kill9()
    assert_all_gone(bots)


def test_a_restarted_server_never_shows_a_demo_bot_twice(make_hive: Callable[..., Hive]) -> None:
    """Killed with -9, serve's demo bots cannot deregister; with a long lease they would
    stay live next to the new ones (the reaper waits a lease before it calls them lost)."""
    hive = make_hive(APIARY_BOT_LEASE_TTL_S="60")
    hive.start("--demo-bots", "3")
    admin = hive.client(hive.key("admin"))

    def live_names() -> Counter[str]:
        items = admin.get("/v1/bots").json()["items"]
        return Counter(b["name"] for b in items if b["state"] in LIVE)

    wait_for(lambda: len(live_names()) == 3, timeout=60, what="three demo bots registered")
    first = {b["id"] for b in admin.get("/v1/bots").json()["items"]}
    old = demo_bots(hive, 3)
    hive.kill9()
    hive.start("--demo-bots", "3")
    admin = hive.client(hive.key("admin"))

    def new_ones_live() -> bool:
        items = admin.get("/v1/bots").json()["items"]
        names = Counter(b["name"] for b in items if b["state"] in LIVE)
        assert all(n == 1 for n in names.values()), f"a demo bot shown twice: {names}"
        fresh = [b for b in items if b["state"] in LIVE and b["id"] not in first]
        return len(fresh) == 3

    wait_for(new_ones_live, timeout=60, what="the new demo bots registered")
    assert sorted(live_names()) == ["demo-1", "demo-2", "demo-3"]
    assert_all_gone(old)


@pytest.mark.parametrize("phase", ["importing", "registering"])
def test_a_pool_bot_dies_with_the_engine_that_launched_it(tmp_path: Path, phase: str) -> None:
    """The autoscaler's launcher, in a process killed with -9 while its bot imports or
    registers (with a hive that is not there)."""
    log = (tmp_path / "host.log").open("wb")
    host = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.launcher_host", f"http://127.0.0.1:{free_port()}"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert host.stdout is not None
        bot = psutil.Process(int(host.stdout.readline()))
        if phase == "registering":
            wait_for(lambda: registering(bot), timeout=60, what="the pool bot registering")
        host.send_signal(signal.SIGKILL)
        host.wait(timeout=10)
        assert_all_gone([bot])
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        log.close()


CHILD = (
    "import os, sys\n"
    "from runtime.bot.parent import hold\n"
    "hold(os.getppid())\n"
    "print('held', flush=True)\n"
    "sys.stdin.readline()\n"
    "print('alive', flush=True)\n"
)


@pytest.mark.parametrize("spawned", [True, False], ids=["spawner", "the-thread-itself"])
def test_a_bot_outlives_the_thread_that_asked_for_it_only_through_the_spawner(
    spawned: bool,
) -> None:
    """Linux signals a child when the *thread* that forked it ends: a bot that a loop's
    thread forks would die with that thread. The spawner forks from a thread of its own."""
    spawner = Spawner()
    started: list[subprocess.Popen[bytes]] = []
    tid: list[int] = []
    options = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "cwd": REPO}

    def ask() -> None:
        tid.append(threading.get_native_id())
        args = [sys.executable, "-c", CHILD]
        if spawned:
            started.append(spawner.popen(args, os.environ, **options))
        else:
            started.append(subprocess.Popen(args, **options))  # type: ignore[call-overload]
        assert started[0].stdout is not None
        assert started[0].stdout.readline() == b"held\n"

    asking = threading.Thread(target=ask)
    asking.start()
    asking.join()
    # The thread is gone from the kernel too: any death signal for it has been sent.
    wait_for(lambda: not Path(f"/proc/self/task/{tid[0]}").exists(), what="the thread's end")
    child = started[0]
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write(b"still there?\n")
        child.stdin.flush()
        answer = child.stdout.readline()
    except BrokenPipeError:
        answer = b""
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        spawner.close()
    assert answer == (b"alive\n" if spawned else b"")
