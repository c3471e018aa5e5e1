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
from pathlib import Path
from types import FrameType

import uvicorn

from api.bootstrap import Node
from api.bootstrap import migrate as apply_schema
from api.settings import Settings

log = logging.getLogger(__name__)

DEMO_CAPABILITIES = "code,analysis,writing,noop"
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
                    run_http(node, settings, fleet, ensure_admin_key(node, home))
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


def run_http(node: Node, settings: Settings, fleet: DemoFleet, admin_key: Path) -> None:
    from api.app import create_app

    base = f"http://{settings.host}:{settings.port}"

    def started() -> None:
        print(f"Apiary is up: {base}  (API docs {base}/docs; admin key in {admin_key})", flush=True)
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
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    HiveServer(config, on_started=started, on_stopping=stopping).run()


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


def ensure_admin_key(node: Node, home: Path) -> Path:
    """Keep a working admin key (mode 0600) where the user can find it.

    Issued on first start, and again if the one on file does not open this database
    (a new database, or a revoked key).
    """
    from domain.cause import Cause
    from domain.keys import ApiKey, Role, parse_token, secret_matches

    path = home / "admin.key"
    if path.exists():
        parsed = parse_token(path.read_text().strip())
        if parsed is not None:
            key = node.hive.load_many(ApiKey, [parsed[0]]).get(parsed[0])
            if key is not None and not key.revoked and secret_matches(key, parsed[1]):
                return path
    issued = node.hive.keys.issue("admin", Role.ADMIN, Cause("serve", "admin-key"))
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(issued.token + "\n")
    tmp.replace(path)
    return path


class DemoFleet:
    """``count`` local bot processes doing the built-in task types, with a fresh enrolment
    key (passed in the environment, never on a command line)."""

    def __init__(self, node: Node, base: str, count: int) -> None:
        self.node = node
        self.base = base
        self.count = count
        self.bots: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        if self.count <= 0:
            return
        from domain.cause import Cause
        from domain.keys import Role

        enrol = self.node.hive.keys.issue("demo-bots", Role.BOT, Cause("serve", "demo-bots"))
        env = {
            **os.environ,
            "APIARY_BOT_TOKEN": enrol.token,
            "APIARY_HIVE_URL": self.base,
            "APIARY_EXIT_WITH_PARENT": "1",
        }
        self.bots = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "api.cli",
                    "bot",
                    "--capabilities",
                    DEMO_CAPABILITIES,
                    "--name",
                    f"demo-{i + 1}",
                ],
                env=env,
                start_new_session=True,
            )
            for i in range(self.count)
        ]

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
