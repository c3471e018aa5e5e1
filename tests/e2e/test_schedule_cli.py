"""`apiary schedule ...` against a real `apiary serve`: a schedule made, fired, paused, gone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.harness import Hive, apiary
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


def schedule_cli(hive: Hive, key: str, *args: str) -> tuple[int, Any, str]:
    done = apiary("schedule", *args, "--json", env={**hive.env, "APIARY_KEY": key}, check=False)
    out = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, out, done.stderr


def test_a_schedule_made_with_the_cli_fires_and_can_be_paused_and_deleted(hive: Hive) -> None:
    hive.start()
    key = hive.key("client")
    url = ["--url", hive.url]
    code, made, err = schedule_cli(
        hive,
        key,
        "create",
        *url,
        "--name",
        "heartbeat",
        "--every",
        "1",
        "--type",
        "noop",
        "--payload",
        '{"from": "cli"}',
        "--overlap",
        "allow_all",
    )
    assert code == 0, err
    assert made["state"] == "active" and made["every_s"] == 1
    assert made["template"]["payload"] == {"from": "cli"}

    with hive.client(key) as http:

        def fired() -> list[dict[str, Any]]:
            page = http.get("/v1/tasks", params={"schedule_id": made["id"]})
            page.raise_for_status()
            items: list[dict[str, Any]] = page.json()["items"]
            return items if len(items) >= 2 else []

        tasks = wait_for(fired, timeout=20, what="two ticks fired as tasks")
        assert {t["submitted_by"] for t in tasks} == {"engine:scheduler"}
        assert {t["type"] for t in tasks} == {"noop"}

    code, shown, err = schedule_cli(hive, key, "show", *url, made["id"])
    assert code == 0, err
    assert shown["created_by"] == "client" and shown["fired"] >= 1
    code, listed, _ = schedule_cli(hive, key, "list", *url, "--state", "active")
    assert [s["id"] for s in listed["items"]] == [made["id"]]

    code, paused, _ = schedule_cli(hive, key, "pause", *url, made["id"])
    assert code == 0 and paused["state"] == "paused"
    code, _, err = schedule_cli(hive, key, "pause", *url, made["id"])
    assert code == 1 and json.loads(err)["status"] == 409
    code, resumed, _ = schedule_cli(hive, key, "resume", *url, made["id"])
    assert code == 0 and resumed["state"] == "active"
    code, deleted, _ = schedule_cli(hive, key, "delete", *url, made["id"])
    assert code == 0 and deleted["state"] == "deleted"


def test_the_cli_shows_why_a_schedule_is_refused(hive: Hive) -> None:
    hive.start()
    key = hive.key("client")
    code, _, err = schedule_cli(
        hive,
        key,
        "create",
        "--url",
        hive.url,
        "--name",
        "bad",
        "--cron",
        "61 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--type",
        "report",
    )
    problem = json.loads(err)
    assert code == 1 and problem["status"] == 422
    assert "bad minute field" in problem["detail"]
    code, _, err = schedule_cli(hive, key, "list", "--url", hive.url, "--key", "apk_nope")
    assert code == 1 and json.loads(err)["status"] == 401
