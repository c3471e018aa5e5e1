"""Real processes for end-to-end tests: `apiary serve` and `apiary bot` as OS processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict

from store.database import url_with_database
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def apiary(
    *args: str, env: dict[str, str], check: bool = True, cwd: Path = REPO, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


@dataclass
class Hive:
    """A hive server process on a test database, and the keys to talk to it."""

    db_url: str
    home: Path
    port: int = field(default_factory=free_port)
    settings: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    cwd: Path = REPO  # whose code runs: another checkout's, for an A/B benchmark

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "APIARY_DATABASE_URL": self.db_url,
            "APIARY_HOME": str(self.home),
            "APIARY_PORT": str(self.port),
            **self.settings,
        }

    def start(self, *extra: str) -> Hive:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path = self.home / f"serve-{self.port}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "serve", *extra],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._healthy, timeout=60, what=f"hive at {self.url} (log: {self.log_path})")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited {self.proc.returncode}: {self.log_text()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def key(self, role: str) -> str:
        """A new key of ``role``, issued at the database as ``apiary keys create`` does
        (tests/e2e/test_keys_cli.py runs the command itself). In this process: a CLI process
        costs seconds of Python start-up on this machine, and most tests want several keys.
        Another checkout's hive (an A/B) gets its keys from its own code's command."""
        if self.cwd != REPO:
            return apiary(
                "keys", "create", "--role", role, env=self.env, cwd=self.cwd
            ).stdout.strip()
        from api.bootstrap import open_hive
        from api.settings import Settings
        from domain.cause import Cause
        from domain.keys import Role

        writer = open_hive(self.db_url, Settings())
        try:
            return writer.keys.issue(role, Role(role), Cause("cli:keys", "e2e")).token
        finally:
            writer.close()

    def admin_key(self) -> str:
        """The admin key ``serve`` keeps in its home (no CLI process to start: seconds saved)."""
        return (self.home / "admin.key").read_text().strip()

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )


def signed_in(url: str, key: str, **client_args: Any) -> httpx.Client:
    """An HTTP client signed in to the dashboard at ``url`` with ``key`` (the session's
    cookie in its jar), sending what the dashboard's own pages send: that origin."""
    client = httpx.Client(base_url=url, headers={"Origin": url}, **client_args)
    response = client.post("/dashboard/session", json={"key": key})
    assert response.status_code == 200, response.text
    return client


@dataclass
class Bot:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def start_bot(hive: Hive, token: str, name: str, *args: str, main: str = "api.cli") -> Bot:
    """An ``apiary bot`` process (``main``: the module that runs its command line)."""
    log_path = hive.home / f"bot-{name}.log"
    env = {**os.environ, "APIARY_BOT_TOKEN": token, "APIARY_HIVE_URL": hive.url}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", main, "bot", "--name", name, *args],
            env=env,
            cwd=hive.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Bot(proc, log_path)


def task(client: httpx.Client, task_id: str) -> dict[str, Any]:
    """The task as the view shows it; an empty dict while the view has not got it yet."""
    response = client.get(f"/v1/tasks/{task_id}")
    if response.status_code == 404:
        return {"state": None}
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


@contextmanager
def outage(db_url: str) -> Iterator[None]:
    """A real database outage: the server refuses the database's connections and drops
    the open ones until the block ends."""
    name = conninfo_to_dict(db_url)["dbname"]
    with psycopg.connect(url_with_database(db_url, "postgres"), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
