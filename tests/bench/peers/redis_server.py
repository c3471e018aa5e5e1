"""A private Redis server for the bench: Debian's ``redis-server`` on a free loopback port, in
a temporary directory, no persistence; stopped (and its directory removed) on exit."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from tests.bench.peers.drivers.workload import die_with_parent
from tests.bench.peers.venvs import Skipped
from tests.e2e.harness import free_port
from tests.waiting import wait_for


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield ``redis://127.0.0.1:<port>`` (no database number)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise Skipped("celery: no redis-server on PATH (Debian: apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="peers-redis-") as tmp:
        proc = subprocess.Popen(
            [
                binary,
                *("--port", str(port), "--bind", "127.0.0.1", "--dir", tmp),
                *("--save", "", "--appendonly", "no", "--logfile", f"{tmp}/redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # no server left behind by a crashed bench
        )
        try:
            wait_for(lambda: answers(port, proc), timeout=30, what=f"redis-server on {port}")
            yield f"redis://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def answers(port: int, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise Skipped(f"celery: redis-server exited {proc.returncode} on start")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "none"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return next((w[2:] for w in out.split() if w.startswith("v=")), out.strip())
