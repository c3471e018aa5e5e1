"""The operator's day with the CLI against a real `apiary serve` (issue 11, finding 11):
tasks and bots over HTTP, tables for people and --json for scripts, exit statuses, one
--url/--key convention (`apiary bot` keeps --hive/--token), `message list` without a
conversation, and `message read --wait` past the old 10 s cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.e2e.harness import REPO, Bot, Hive, apiary
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


def cli(hive: Hive, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A command with --url/--key given as APIARY_URL/APIARY_KEY (the convention's other half)."""
    return apiary(*args, env={**hive.env, "APIARY_URL": hive.url, "APIARY_KEY": key}, check=False)


def as_json(hive: Hive, key: str, *args: str) -> Any:
    done = cli(hive, key, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def run_bot(hive: Hive, name: str, *flags: str) -> Bot:
    log_path = hive.home / f"bot-{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("APIARY_")}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "bot", *flags, "--name", name],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Bot(proc, log_path)


def test_tasks_from_submit_to_cancel(hive: Hive) -> None:
    hive.start()
    key = hive.key("client")
    made = as_json(hive, key, "task", "submit", "--type", "paint", "--payload", '{"n": 1}')
    assert made["state"] == "pending" and made["payload"] == {"n": 1}

    shown = cli(hive, key, "task", "show", made["id"])
    assert shown.returncode == 0, shown.stderr
    assert f"id               {made['id']}" in shown.stdout  # people get name: value lines
    assert "submitted_by     client" in shown.stdout

    def listed() -> list[str]:
        page = as_json(hive, key, "task", "list", "--type", "paint", "--state", "pending")
        return [t["id"] for t in page["items"]]

    assert wait_for(listed, what="the task in the view") == [made["id"]]
    people = cli(hive, key, "task", "list", "--type", "paint").stdout.splitlines()
    assert people[0].split() == ["ID", "TYPE", "PRI", "STATE", "BOT", "SUBMITTED", "BY"]
    assert people[1].split()[:4] == [made["id"], "paint", "5", "pending"]

    cancelled = as_json(hive, key, "task", "cancel", made["id"], "--reason", "not today")
    assert (cancelled["state"], cancelled["error"]) == ("cancelled", "not today")
    again = cli(hive, key, "task", "cancel", made["id"])
    assert again.returncode == 1  # refused: a person reads one line on stderr
    assert again.stderr.startswith("apiary task: 409 ")
    missing = cli(hive, key, "task", "show", "00000000-0000-0000-0000-000000000000", "--json")
    assert missing.returncode == 1 and json.loads(missing.stderr)["status"] == 404
    bad = cli(hive, key, "task", "submit", "--type", "paint", "--payload", "{oops")
    assert bad.returncode == 2 and "--payload is not JSON" in bad.stderr
    assert cli(hive, key, "task", "list", "--state", "asleep").returncode == 2


def test_bots_listed_shown_drained_quarantined_and_reinstated(hive: Hive) -> None:
    hive.start()
    admin, enrol = (hive.home / "admin.key").read_text().strip(), hive.key("bot")
    new = run_bot(hive, "new", "run", "--url", hive.url, "--key", enrol, "--capabilities", "code")
    old = run_bot(hive, "old", "--hive", hive.url, "--token", enrol, "--capabilities", "writing")
    try:

        def live() -> dict[str, dict[str, Any]]:
            items = as_json(hive, admin, "bot", "list")["items"]
            return {b["name"]: b for b in items} if len(items) == 2 else {}

        bots = wait_for(live, timeout=30, what="both bots registered")
        assert (bots["new"]["capabilities"], bots["old"]["capabilities"]) == (["code"], ["writing"])
        table = cli(hive, admin, "bot", "list", "--capability", "code").stdout.splitlines()
        assert table[0].split()[:3] == ["ID", "NAME", "STATE"]
        assert [row.split()[1] for row in table[1:]] == ["new"]

        one, other = bots["new"]["id"], bots["old"]["id"]
        assert as_json(hive, admin, "bot", "show", one)["name"] == "new"
        assert (
            as_json(hive, admin, "bot", "drain", one, "--reason", "upgrade")["state"] == "draining"
        )
        again = as_json(hive, admin, "bot", "drain", one)  # changes nothing
        assert (again["state"], again["position"]) == ("draining", None)
        refused = cli(hive, admin, "bot", "quarantine", one, "--json")  # not while draining
        assert refused.returncode == 1 and json.loads(refused.stderr)["status"] == 409
        assert as_json(hive, admin, "bot", "quarantine", other)["state"] == "quarantined"
        assert as_json(hive, admin, "bot", "reinstate", other)["state"] == "ready"
        client = hive.key("client")
        refused = cli(hive, client, "bot", "quarantine", other)
        assert refused.returncode == 1 and refused.stderr.startswith("apiary bot: 403 ")
    finally:
        assert new.stop() == 0 and old.stop() == 0  # each deregisters as it leaves

    def gone() -> list[str]:
        items = as_json(hive, admin, "bot", "list", "--state", "deregistered")["items"]
        return sorted(b["name"] for b in items) if len(items) == 2 else []

    assert wait_for(gone, what="both deregistered") == ["new", "old"]
    assert as_json(hive, admin, "bot", "list")["items"] == []  # the default: live bots only


def test_messages_listed_without_a_conversation_and_read_past_ten_seconds(hive: Hive) -> None:
    hive.start()
    admin, enrol = (hive.home / "admin.key").read_text().strip(), hive.key("bot")
    with hive.client(enrol) as http:
        made = http.post(
            "/v1/bots",
            json={"name": "reader", "capabilities": ["chat"], "max_concurrency": 1, "version": "1"},
        ).json()
    bot_id, own_key = made["bot_id"], made["token"]
    sent = as_json(hive, admin, "message", "send", "--to-bot", bot_id, "--body", '{"hi": 1}')
    [first] = sent["items"]

    def latest() -> list[str]:
        return [m["id"] for m in as_json(hive, admin, "message", "list")["items"]]

    assert wait_for(latest, what="the message in the view") == [first["id"]]
    read = cli(hive, own_key, "message", "read", "--bot", bot_id, "--ack")
    assert read.returncode == 0, read.stderr
    assert read.stdout.splitlines()[1].split()[0] == first["id"]

    reader = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "message", "read", "--bot", bot_id, "--wait", "25"],
        env={**hive.env, "APIARY_URL": hive.url, "APIARY_KEY": own_key},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    began = time.monotonic()
    wait_for(  # the old CLI cut every wait to 10 s and had answered (nothing) by now
        lambda: time.monotonic() - began > 11 and reader.poll() is None,
        timeout=15,
        what="the reader still waiting past 10 s",
    )
    late = as_json(hive, admin, "message", "send", "--to-bot", bot_id, "--body", '"late"')
    out, err = reader.communicate(timeout=30)
    assert reader.returncode == 0, err
    assert late["items"][0]["id"] in out
