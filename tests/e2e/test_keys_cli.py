"""`apiary keys ...` as an operator runs it: the first admin key against the database
(no server yet), then the keys over HTTP against a real `apiary serve`; and serve's own
admin key file, which a server never replaces (two servers sharing a home, each with its
own database; a revoked key on file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from tests.e2e.harness import Hive, apiary
from tests.pg import fresh_database
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


def keys(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = apiary("keys", *args, env=env, check=False)
    return done.returncode, done.stdout, done.stderr


def answer(env: dict[str, str], *args: str) -> Any:
    code, out, err = keys(env, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def database_side(hive: Hive) -> dict[str, str]:
    """The environment of an operator at the database: no API named."""
    return {k: v for k, v in hive.env.items() if k not in ("APIARY_URL", "APIARY_KEY")}


def test_keys_are_managed_from_the_cli_first_at_the_database_then_over_http(
    hive: Hive,
) -> None:
    env = database_side(hive)
    code, out, err = keys(env, "create", "--role", "admin", "--name", "ops")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("apk_") and "\n" not in token and "shown once" in err
    listed = answer(env, "list")["items"]  # no server, no engine: the view is caught up
    assert [(k["name"], k["role"], k["created_by"]) for k in listed] == [
        ("ops", "admin", "cli:keys")
    ]
    code, out, _ = keys(env, "list")
    assert out.splitlines()[0].split()[:4] == ["ID", "NAME", "ROLE", "STATE"]
    assert "ops" in out and token.rsplit("_", 1)[1] not in out

    hive.start()
    http = [*("--url", hive.url, "--key", token)]
    made = answer(env, "create", "--role", "client", "--name", "ci", "--expires", "1h", *http)
    assert made["name"] == "ci" and made["expires_at"] and made["created_by"] == "ops"
    with httpx.Client(base_url=hive.url, timeout=10) as client:
        auth = {"Authorization": f"Bearer {made['token']}"}
        assert client.get("/v1/tasks", headers=auth).status_code == 200
        rotated = answer(env, "rotate", made["id"], *http)
        assert rotated["replaces"] == made["id"] and rotated["name"] == "ci"
        assert client.get("/v1/tasks", headers=auth).status_code == 401
        auth = {"Authorization": f"Bearer {rotated['token']}"}
        assert client.get("/v1/tasks", headers=auth).status_code == 200
        code, out, err = keys(env, "revoke", rotated["id"], *http)
        assert code == 0 and "revoked" in out, err
        assert client.get("/v1/tasks", headers=auth).status_code == 401

    code, out, err = keys(env, "revoke", rotated["id"], *http)  # refused: a problem, exit 1
    assert code == 1 and out == "" and "already revoked" in err
    code, _, err = keys(env, "revoke", rotated["id"])  # the same at the database
    assert code == 1 and "already revoked" in err

    def listed() -> list[tuple[str, str]]:  # (not serve's own admin and launcher keys)
        items = answer(env, "list", "--all", *http)["items"]
        return [(k["name"], k["state"]) for k in items if k["name"] in ("ops", "ci")]

    expected = [("ops", "active"), ("ci", "revoked"), ("ci", "revoked")]
    wait_for(lambda: listed() == expected, timeout=30, what="the list to show the revocations")
    code, _, err = keys(env, "show", "00000000-0000-0000-0000-000000000001", *http)
    assert code == 1 and "not-found" in err


def test_two_servers_sharing_a_home_never_replace_each_others_admin_key(
    make_hive: Any, pg_server_url: str, tmp_path: Path
) -> None:
    first = make_hive().start()
    key_file = first.home / "admin.key"
    written = key_file.read_text()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    with fresh_database(pg_server_url, "apiary_other") as other_db:
        second = Hive(db_url=other_db, home=first.home)
        try:
            second.start()
            assert key_file.read_text() == written
            said = second.log_text()
            assert "does not open this database" in said and "another database" in said
            assert "apiary keys create --role admin" in said
            with httpx.Client(base_url=first.url, timeout=10) as client:
                auth = {"Authorization": f"Bearer {written.strip()}"}
                assert client.get("/v1/keys", headers=auth).status_code == 200
        finally:
            second.stop()
    assert "Traceback" not in second.log_text()

    first.stop()  # the file's key revoked at the database: serve says so, and keeps the file
    key_id = written.strip().split("_")[1]
    env = database_side(first)
    code, _, err = keys(env, "revoke", str(UUID(hex=key_id)))
    assert code == 0, err
    again = Hive(db_url=first.db_url, home=first.home, port=first.port)
    try:
        again.start()
        assert key_file.read_text() == written
        assert "it is revoked" in again.log_text()
    finally:
        again.stop()


def test_the_first_start_in_a_home_issues_the_admin_key(hive: Hive) -> None:
    assert not (hive.home / "admin.key").exists()
    hive.start()
    token = (hive.home / "admin.key").read_text().strip()
    with httpx.Client(base_url=hive.url, timeout=10) as client:
        shown = client.get("/v1/keys", headers={"Authorization": f"Bearer {token}"})
    assert shown.status_code == 200
    assert [(k["name"], k["created_by"]) for k in shown.json()["items"]][:1] == [("admin", "serve")]
    assert f"admin key in {hive.home / 'admin.key'}" in hive.log_text()
