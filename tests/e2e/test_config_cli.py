"""`apiary config ...` against a real `apiary serve`: show, set, history, diff, rollback and
apply, each felt by the next request to the server; a bad change refused, naming why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Hive, apiary

pytestmark = pytest.mark.e2e


def config_cli(hive: Hive, key: str, *args: str) -> tuple[int, Any, str]:
    command, *rest = args
    done = apiary(
        "config",
        command,
        "--url",
        hive.url,
        "--key",
        key,
        "--json",
        *rest,
        env=hive.env,
        check=False,
    )
    out = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, out, done.stderr


def batch(http: httpx.Client, n: int) -> int:
    response = http.post("/v1/tasks/batch", json={"tasks": [{"type": "noop"}] * n})
    return response.status_code


def test_the_config_is_shown_changed_diffed_and_rolled_back_from_the_cli(
    hive: Hive, tmp_path: Path
) -> None:
    hive.start()
    admin = hive.key("admin")
    code, shown, err = config_cli(hive, admin, "show")
    assert code == 0, err
    assert shown["version"] == 1 and shown["document"]["max_batch"] == 1000

    code, changed, err = config_cli(
        hive, admin, "set", "max_batch=10", "--reason", "smaller batches"
    )
    assert code == 0, err
    assert changed["version"] == 2 and changed["document"]["max_batch"] == 10
    assert changed["reason"] == "smaller batches"
    with hive.client(hive.key("client")) as http:
        assert batch(http, 11) == 422
        assert batch(http, 10) == 201

        code, history, err = config_cli(hive, admin, "history")
        assert code == 0, err
        assert [v["version"] for v in history["items"]] == [2, 1]
        assert history["items"][0]["changes"] == [
            {"path": "max_batch", "before": 1000, "after": 10}
        ]
        assert history["items"][0]["reason"] == "smaller batches"

        code, diff, err = config_cli(hive, admin, "diff", "1", "2")
        assert code == 0, err
        assert diff == {
            "from": 1,
            "to": 2,
            "changes": [{"name": "max_batch", "before": 1000, "after": 10}],
        }

        code, rolled, err = config_cli(hive, admin, "rollback", "1")
        assert code == 0, err
        assert rolled["version"] == 3 and rolled["document"] == shown["document"]
        assert rolled["reason"] == "rollback to version 1"
        assert batch(http, 11) == 201

        document = tmp_path / "hive.toml"
        document.write_text(
            "max_batch = 5\ndispatch_page = 50\n\n"
            '[[pool]]\nname = "gpu"\ncapabilities = ["gpu"]\nmax_bots = 2\n'
        )
        code, applied, err = config_cli(hive, admin, "apply", str(document), "--reason", "x")
        assert code == 0, err
        assert applied["version"] == 4
        assert applied["document"]["dispatch_page"] == 50
        assert [p["name"] for p in applied["document"]["pools"]] == ["gpu"]
        assert applied["document"]["claim_max_wait_s"] == 30.0  # left out: the default
        assert batch(http, 6) == 422
        assert batch(http, 5) == 201


def test_a_change_the_server_refuses_exits_1_naming_why(hive: Hive) -> None:
    hive.start()
    admin = hive.key("admin")
    code, _, err = config_cli(hive, admin, "set", "nonsense=1", "--reason", "typo")
    problem = json.loads(err)
    assert code == 1 and problem["status"] == 422
    assert [e["loc"] for e in problem["errors"]] == [["body", "changes", "nonsense"]]
    code, _, err = config_cli(hive, admin, "set", "max_batch=0", "--reason", "none at all")
    assert code == 1 and json.loads(err)["errors"][0]["loc"] == ["body", "changes", "max_batch"]
    code, _, err = config_cli(hive, hive.key("client"), "set", "max_batch=5", "--reason", "r")
    assert code == 1 and json.loads(err)["status"] == 403
    code, shown, err = config_cli(hive, admin, "show")
    assert code == 0 and shown["version"] == 1, err
