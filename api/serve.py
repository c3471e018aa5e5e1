"""``apiary serve``: the whole hive in one command, stopped cleanly by Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import uvicorn

from api.bootstrap import Node
from api.bootstrap import migrate as apply_schema
from api.settings import Settings

log = logging.getLogger(__name__)

DEMO_CAPABILITIES = "code,analysis,writing,noop"
BOT_STOP_GRACE_S = 15.0


def serve(settings: Settings, *, role: str, demo_bots: int, migrate: bool) -> int:
    from store.database import database_url

    home = settings.home.resolve()
    with database_url(os.environ, home) as url:
        if migrate:
            apply_schema(url)
        node = Node(settings, url, role=role).start()
        try:
            base = f"http://{settings.host}:{settings.port}"
            if node.serves_api:
                admin_key = ensure_admin_key(node, home)
                print(
                    f"Apiary is up: {base}  (API docs {base}/docs; admin key in {admin_key})",
                    flush=True,
                )
            with demo_fleet(node, base, demo_bots):
                run_http(node, settings) if node.serves_api else wait_for_signal()
        finally:
            node.stop()
    return 0


def run_http(node: Node, settings: Settings) -> None:
    from api.app import create_app

    app = create_app(node.container())
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    HiveServer(config, on_exit=node.claims.close).run()


class HiveServer(uvicorn.Server):
    """Uvicorn, plus: on Ctrl-C or SIGTERM, waiting claim long-polls answer at once, so a
    graceful shutdown does not wait out their timeouts."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)


def wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log.info("stopping", extra={"action": "stopping"})


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
    issued = node.hive.issue_key("admin", Role.ADMIN, Cause("serve", "admin-key"))
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(issued.token + "\n")
    tmp.replace(path)
    return path


@contextlib.contextmanager
def demo_fleet(node: Node, base: str, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start ``count`` bot processes with a fresh enrolment key; stop them (SIGTERM) on exit."""
    if count <= 0:
        yield []
        return
    from domain.cause import Cause
    from domain.keys import Role

    enrol = node.hive.issue_key("demo-bots", Role.BOT, Cause("serve", "demo-bots"))
    env = {**os.environ, "APIARY_BOT_TOKEN": enrol.token, "APIARY_HIVE_URL": base}
    bots = [
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
        for i in range(count)
    ]
    try:
        yield bots
    finally:
        for bot in bots:
            if bot.poll() is None:
                bot.send_signal(signal.SIGTERM)
        for bot in bots:
            try:
                bot.wait(timeout=BOT_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                bot.kill()
                bot.wait()
