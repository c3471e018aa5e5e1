"""``apiary serve``: the whole hive in one command, stopped cleanly by Ctrl-C or SIGTERM.

Start: schema, node (views, live index, loops), HTTP; demo bots once HTTP listens. Stop
(first signal): the demo bots finish what they hold and deregister while HTTP still
serves them, waiting claims answer and the dashboard's streams end (so the graceful stop
waits for no open request, and cancels none), HTTP stops, the node stops, then the embedded
database. A second signal stops at once.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

from api.admin_key import AdminKey, admin_key
from api.bootstrap import Node
from api.bootstrap import migrate as apply_schema
from api.settings import Settings

log = logging.getLogger(__name__)

DEMO_CAPABILITIES = "code,analysis,writing,noop"
DEMO_PRINCIPAL = "demo-bots"  # the name of their enrolment key: whom they register as
# The cyclic garbage collector's thresholds for a server process. Commands decide on copies
# of the aggregates they change and events come and go by the thousand a second: nearly all
# of it is freed by reference counting, but every 700 new containers Python's default starts
# a collection, and every 100 of those a full one over the whole heap (the caches included).
# Measured (tests/bench/ab.py's kind of load, 80,000 commands in-process): 0.73 s of
# collections at (700, 10, 10), 0.09 s at these.
GC_THRESHOLDS = (50_000, 20, 20)
# glibc gives each thread that allocates its own malloc arena (up to 8 per core); memory
# freed in one arena is not reused by another, so a many-threaded server's RSS creeps up.
# Measured (python -m tests.bench.soak, 200,000 tasks): serve's RSS grew 12.3% over the
# last half of the run with the default, 7.6% with two arenas.
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt() parameter


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Before the threads start: at most ``arenas`` malloc arenas (glibc only; elsewhere,
    or when set by ``MALLOC_ARENA_MAX`` already, nothing changes)."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, say): it has no arenas to limit
        return
    libc.mallopt(M_ARENA_MAX, arenas)


BOT_STOP_GRACE_S = 15.0


def serve(settings: Settings, *, role: str, demo_bots: int, migrate: bool) -> int:
    from store.database import database_url

    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM unwinds like Ctrl-C
    gc.set_threshold(*GC_THRESHOLDS)
    limit_malloc_arenas()
    home = settings.home.resolve()
    try:
        with database_url(os.environ, home) as url:
            if migrate:
                apply_schema(url)
            node = Node(settings, url, role=role).start()
            gc.freeze()  # what start-up built lives as long as the process: never scan it
            try:
                base = settings.hive_url or f"http://{settings.host}:{settings.port}"
                fleet = DemoFleet(node, base, demo_bots)
                if node.serves_api:
                    run_http(node, settings, fleet, admin_key(node.hive, home))
                else:
                    fleet.start()
                    start_scaling(node, base)
                    wait_for_signal()
                    node.stop_scaling()
                    fleet.stop()
            finally:
                node.stop()
    except KeyboardInterrupt:
        log.info("stopped", extra={"action": "stopped"})
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_http(node: Node, settings: Settings, fleet: DemoFleet, admin: AdminKey) -> None:
    from api.app import create_app
    from api.door import DoorLimits, door
    from store.database import describe_target

    base = f"http://{settings.host}:{settings.port}"

    def started() -> None:
        advice = admin.advice(describe_target(node.url))
        print(started_banner(base, advice), flush=True)
        log.info("serving", extra={"action": "serving", "url": base})
        fleet.start()
        start_scaling(node, settings.hive_url or base)

    def stopping() -> None:
        node.stop_scaling()
        fleet.stop()
        node.claims.close()
        node.messages.close()
        node.broadcast.close()

    config = uvicorn.Config(
        create_app(node.container()),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=door(
            DoorLimits(settings.max_head_bytes, settings.max_headers, settings.header_timeout_s)
        ),
        timeout_keep_alive=settings.keep_alive_s,
        limit_concurrency=settings.max_connections,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        # X-Forwarded-Proto/-For only from the proxies the operator names (uvicorn's own
        # default would trust 127.0.0.1): https there makes the dashboard's cookie Secure.
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    HiveServer(config, on_started=started, on_stopping=stopping).run()


BANNER_WIDTH = 72


def started_banner(base: str, advice: str) -> str:
    """What ``apiary serve`` prints on stdout once it listens: set apart from the log lines
    (those go to stderr), so it does not scroll away unseen among them."""
    rows = [
        f"Apiary is up: {base}",
        f"  dashboard  {base}/dashboard",
        f"  API docs   {base}/docs",
        f"  {advice}",
    ]
    rule = "=" * min(max(len(r) for r in rows), BANNER_WIDTH)
    return "\n".join(["", rule, *rows, rule, ""])


class HiveServer(uvicorn.Server):
    """Uvicorn, with two hooks: ``on_started`` once it listens, and ``on_stopping`` on the
    first signal, run while it still serves (bots deregister over HTTP); then it stops."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        on_started: Callable[[], None],
        on_stopping: Callable[[], None],
    ) -> None:
        super().__init__(config)
        self.on_started = on_started
        self.on_stopping = on_stopping
        self.stopping = False

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets)  # type: ignore[arg-type]
        if self.started:
            self.on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stopping:
            self.force_exit = True
            super().handle_exit(sig, frame)
            return
        self.stopping = True
        self._captured_signals.append(sig)
        threading.Thread(target=self._stop_after_hook, name="stopping", daemon=True).start()

    def _stop_after_hook(self) -> None:
        try:
            self.on_stopping()
        finally:
            self.should_exit = True


def start_scaling(node: Node, hive_url: str) -> None:
    """The autoscaler, with a launcher of local bot processes (its own enrolment key)."""
    if not node.serves_engine:
        return
    from domain.cause import Cause
    from domain.keys import Role
    from runtime.scaling.launcher import LocalProcessLauncher

    enrol = node.hive.keys.issue("launcher", Role.BOT, Cause("serve", "launcher"))
    node.start_scaling(LocalProcessLauncher(hive_url, enrol.token, stop_grace_s=BOT_STOP_GRACE_S))
    log.info(
        "autoscaler ready",
        extra={"action": "scaler_ready", "pools": [p.name for p in node.config.knobs.pools]},
    )


def wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


class DemoFleet:
    """``count`` local bot processes doing the built-in task types, with a fresh enrolment
    key (passed in the environment, never on a command line), tied to this process: they
    die with it (``runtime/bot/parent.py``)."""

    def __init__(self, node: Node, base: str, count: int) -> None:
        from runtime.bot.parent import Spawner

        self.node = node
        self.base = base
        self.count = count
        self.bots: list[subprocess.Popen[bytes]] = []
        self.spawner = Spawner()

    def start(self) -> None:
        if self.count <= 0:
            return
        from domain.cause import Cause
        from domain.keys import Role
        from runtime.bot.parent import bot_command, tied_env

        self.retire_earlier()
        enrol = self.node.hive.keys.issue(DEMO_PRINCIPAL, Role.BOT, Cause("serve", "demo-bots"))
        env = tied_env(
            {**os.environ, "APIARY_BOT_TOKEN": enrol.token, "APIARY_HIVE_URL": self.base}
        )
        self.bots = [
            self.spawner.popen(
                bot_command(["--capabilities", DEMO_CAPABILITIES, "--name", f"demo-{i + 1}"]),
                env,
                start_new_session=True,
            )
            for i in range(self.count)
        ]

    def retire_earlier(self) -> None:
        """The demo bots of an earlier serve of this hive died with it, but one killed with
        -9 let none deregister, and they would stay live until the reaper finds their
        leases lapsed (seconds after this start): mark them lost now, so a restart never
        shows a demo bot twice. Demo bots are one serve's per database."""
        from domain.bots import Bot
        from domain.cause import Cause

        cause = Cause("serve", "demo-bots")
        index = self.node.index
        for bot in self.node.hive.load_many(Bot, index.live_bots()).values():
            if bot.registered_by == DEMO_PRINCIPAL and bot.is_live:
                self.node.hive.fleet.lose(
                    bot.id, index.held_by(bot.id), "its serve is gone: a new one started", cause
                )

    def stop(self) -> None:
        for bot in self.bots:
            if bot.poll() is None:
                bot.send_signal(signal.SIGTERM)
        for bot in self.bots:
            try:
                bot.wait(timeout=BOT_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                bot.kill()
                bot.wait()
        self.spawner.close()
