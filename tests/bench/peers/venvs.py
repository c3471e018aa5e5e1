"""Each peer's own virtualenv under <repo>/.bench-peers/<peer>/, installed from its pins.

Installed only when missing or when the pins (or the interpreter) changed: the last good
install leaves a stamp. A peer that cannot be installed is a ``Skipped`` with one line.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.bench.peers.catalog import Peer

REPO = Path(__file__).resolve().parents[3]
HOME = REPO / ".bench-peers"
INSTALL_TIMEOUT_S = 900


class Skipped(Exception):
    """A peer that cannot run here; the message says why, in one line."""


def ensure_venv(peer: Peer) -> Path:
    """The Python of the peer's virtualenv, installing it first if needed."""
    python = interpreter(peer.min_python)
    if python is None:
        wanted = ".".join(map(str, peer.min_python))
        raise Skipped(f"{peer.name}: needs Python >= {wanted}, found none (PATH, pyenv)")
    where = HOME / peer.name
    venv_python = where / "venv" / "bin" / "python"
    stamp = where / "stamp.json"
    wanted_stamp = {"pins": list(peer.pins), "python": python}
    if venv_python.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted_stamp:
        return venv_python
    print(f"peers: installing {peer.name} ({' '.join(peer.pins)}) ...", flush=True)
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    log = where / "install.log"
    steps = (
        [python, "-m", "venv", str(where / "venv")],
        [str(venv_python), "-m", "pip", "install", "--disable-pip-version-check", *peer.pins],
    )
    shown = f"{' '.join(peer.pins)} (log: {log.relative_to(REPO)})"
    try:
        with open(log, "w") as out:
            for step in steps:
                subprocess.run(
                    step,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=True,
                    timeout=INSTALL_TIMEOUT_S,
                )
    except subprocess.CalledProcessError as failed:
        raise Skipped(
            f"{peer.name}: {failed.cmd[2]} exited {failed.returncode} installing {shown}"
        ) from None
    except subprocess.TimeoutExpired:
        raise Skipped(f"{peer.name}: over {INSTALL_TIMEOUT_S} s installing {shown}") from None
    stamp.write_text(json.dumps(wanted_stamp))
    return venv_python


def interpreter(minimum: tuple[int, int]) -> str | None:
    """This Python when new enough, else the first newer one found on PATH or in pyenv."""
    candidates = [sys.executable]
    candidates += [f"python3.{minor}" for minor in range(minimum[1], 16)]
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv}/versions/3.*/bin/python3"))
    for candidate in candidates:
        found = shutil.which(candidate)
        if found is not None and version_of(found) >= minimum:
            return found
    return None


def version_of(python: str) -> tuple[int, int]:
    """(major, minor) of an interpreter; (0, 0) when it does not run (a pyenv shim of a
    version not selected fails)."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys, venv; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return (0, 0)
    if out.returncode != 0:
        return (0, 0)
    major, minor = out.stdout.split()
    return (int(major), int(minor))
