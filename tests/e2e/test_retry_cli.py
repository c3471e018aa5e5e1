"""The operator's dead letters with the CLI against a real `apiary serve` and real bots
(issue 12, "Operators act from where they look"): `apiary task dead` lists them,
`task retry` re-drives one, `task redrive` the rest by a filter (a dry run first), and a
good bot then does them all."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.harness import Hive, apiary, start_bot, task
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

FAILING = f"{shlex.quote(sys.executable)} -c {shlex.quote('import sys; sys.exit(3)')}"
ECHO = f"{shlex.quote(sys.executable)} -c {shlex.quote('import sys; print(sys.stdin.read())')}"


def cli(hive: Hive, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return apiary(*args, env={**hive.env, "APIARY_URL": hive.url, "APIARY_KEY": key}, check=False)


def as_json(hive: Hive, key: str, *args: str) -> Any:
    done = cli(hive, key, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_dead_letters_listed_retried_and_re_driven_then_done_by_a_good_bot(hive: Hive) -> None:
    hive.start()
    admin, client_key = hive.admin_key(), hive.key("client")
    client = hive.client(client_key)
    ids = []
    for n in range(3):  # one attempt each: the first failure dead-letters them
        body = {"type": "mirror", "payload": {"n": n}, "retry": {"max_attempts": 1}}
        made = client.post("/v1/tasks", json=body)
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])

    bad = start_bot(hive, hive.key("bot"), "bad", "--capabilities", "mirror", "--exec", FAILING)
    try:
        wait_for(
            lambda: all(task(client, i)["state"] == "dead" for i in ids),
            timeout=60,
            what="the tasks dead-lettered",
        )
    finally:
        assert bad.stop() == 0

    def listed() -> list[str]:
        return [
            t["id"] for t in as_json(hive, client_key, "task", "dead", "--type", "mirror")["items"]
        ]

    assert (
        wait_for(lambda: len(listed()) == 3 and listed(), what="the dead letters in the view")
        == ids
    )
    people = cli(hive, client_key, "task", "dead").stdout.splitlines()
    assert people[0].split() == ["ID", "TYPE", "KIND", "ATTEMPT", "FINISHED", "REASON", "ERROR"]
    assert sorted(row.split()[0] for row in people[1:]) == sorted(ids)

    dry = as_json(hive, admin, "task", "redrive", "--type", "mirror", "--dry-run", "--reason", "x")
    assert (dry["dry_run"], dry["count"], dry["task_ids"]) == (True, 3, None)
    refused = cli(hive, client_key, "task", "redrive", "--reason", "x")  # admins only
    assert refused.returncode == 1 and refused.stderr.startswith("apiary task: 403 ")

    one = as_json(hive, client_key, "task", "retry", ids[0], "--reason", "mirror fixed")
    assert one["state"] == "pending"
    again = cli(hive, client_key, "task", "retry", ids[0])  # pending now: not retryable
    assert again.returncode == 1 and again.stderr.startswith("apiary task: 409 ")

    rest = as_json(hive, admin, "task", "redrive", "--state", "dead", "--reason", "mirror fixed")
    assert sorted(rest["task_ids"]) == sorted(ids[1:])  # the one retried already: passed over

    def results() -> list[Any] | None:
        tasks = [task(client, i) for i in ids]
        return (
            [t["result"] for t in tasks] if all(t["state"] == "succeeded" for t in tasks) else None
        )

    good = start_bot(hive, hive.key("bot"), "good", "--capabilities", "mirror", "--exec", ECHO)
    try:
        done = wait_for(results, timeout=60, what="the re-driven tasks done")
    finally:
        assert good.stop() == 0
    assert done == [{"n": 0}, {"n": 1}, {"n": 2}]
