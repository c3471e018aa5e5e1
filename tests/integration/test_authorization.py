"""Who may call what: one table, in docs/http-api.md, held against every operation.

The table ("Who may call what") has a row per operation of the OpenAPI document and a
column per kind of caller: no key, a garbage token, a revoked key, an admin key, a client
key, an enrolment key, a bot's own key (the bot the path names, or any bot where the path
names none), another bot's key. A cell says what that caller gets: ``ok`` (let through:
whatever the operation then answers, never 401 or 403), or the exact status (401, 403, or
404 where a bot may not even learn that another's message exists).

The test reads the table, checks it names every operation of the document and no other, and
calls every cell on a real hive. Paths name real things (a task, a schedule, a message to
the bot, the bot itself); each operation gets bots of its own, so what one row does (a
deregistration, a drain) never changes another row's answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Node
from domain.cause import Cause
from domain.keys import Role
from tests.integration.helpers import change_config, served_hive

TABLE_DOC = Path(__file__).resolve().parents[2] / "docs" / "http-api.md"
TABLE_HEADING = "## Who may call what"
SIGN_IN_HEADING = "**Who may sign in.**"
CALLERS = ("none", "garbage", "revoked", "admin", "client", "enrolment", "own bot", "other bot")
LET_THROUGH = "ok"
SETUP = Cause("setup", "authorization-matrix")


def read_table(text: str, heading: str = TABLE_HEADING) -> dict[str, dict[str, str]]:
    """Operation -> caller -> expectation, from the first table after ``heading``."""
    section = text.split(heading, 1)[1].split("\n\n| operation", 1)[1]
    section = "| operation" + section.split("\n\n", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    header = next(line for line in section.splitlines() if line.startswith("| operation"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    assert tuple(columns) == CALLERS, f"the table's columns are {columns}, not {CALLERS}"
    table: dict[str, dict[str, str]] = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        operation = cells[0].strip("`")
        assert operation not in table, f"{operation} is in the table twice"
        table[operation] = dict(zip(CALLERS, cells[1:], strict=True))
    return table


@dataclass
class Hive:
    """What the calls need: the app, the keys, real things for the paths to name."""

    client: TestClient
    node: Node
    tokens: dict[str, str | None]
    task_id: UUID
    schedule_id: UUID

    def bots(self) -> tuple[UUID, str, str]:
        """Two new bots: the first's id and key, and the second's key."""
        own, other = (self._register(name) for name in ("own", "other"))
        return own[0], own[1], other[1]

    def _register(self, name: str) -> tuple[UUID, str]:
        answer = self.client.post(
            "/v1/bots",
            json={"name": name, "capabilities": ["code"], "max_concurrency": 1, "version": "1"},
            headers=_bearer(self.tokens["enrolment"]),
        )
        assert answer.status_code == 201, answer.text
        return UUID(answer.json()["bot_id"]), answer.json()["token"]

    def spare_key(self) -> UUID:
        """A client key of no one's, for a row that revokes or rotates one."""
        return self.node.hive.keys.issue("spare", Role.CLIENT, SETUP).key.id

    def message_to(self, bot_id: UUID) -> UUID:
        answer = self.client.post(
            "/v1/messages",
            json={"to_bot": str(bot_id), "body": {"hello": "bot"}},
            headers=_bearer(self.tokens["client"]),
        )
        assert answer.status_code == 201, answer.text
        return UUID(answer.json()["items"][0]["id"])


def _bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def hive(pg_server_url: str, migrated_template: str) -> Iterator[Hive]:
    with (
        served_hive(pg_server_url, migrated_template) as node,
        TestClient(create_app(node.container())) as client,
    ):
        # Who may call what, not how often: a failed authentication costs its address a
        # token (api.throttle), and the table's 401 cells would soon be 429s.
        unlimited = {"per_s": 1_000_000, "burst": 1_000_000}
        change_config(node, SETUP, rate_limits={"failed_auth": unlimited})
        keys = node.hive.keys
        revoked = keys.issue("revoked", Role.CLIENT, SETUP)
        keys.revoke(revoked.key.id, SETUP)
        tokens: dict[str, str | None] = {
            "none": None,
            "garbage": "apk_not-a-key",
            "revoked": revoked.token,
            "admin": keys.issue("admin", Role.ADMIN, SETUP).token,
            "client": keys.issue("client", Role.CLIENT, SETUP).token,
            "enrolment": keys.issue("enrolment", Role.BOT, SETUP).token,
        }
        task = client.post(
            "/v1/tasks", json={"type": "code", "payload": {}}, headers=_bearer(tokens["client"])
        )
        schedule = client.post(
            "/v1/schedules",
            json={"name": "nightly", "cron": "0 3 * * *", "template": {"type": "code"}},
            headers=_bearer(tokens["client"]),
        )
        assert task.status_code == 201 and schedule.status_code == 201, (task.text, schedule.text)
        yield Hive(
            client=client,
            node=node,
            tokens=tokens,
            task_id=UUID(task.json()["id"]),
            schedule_id=UUID(schedule.json()["id"]),
        )


def documented_operations() -> list[str]:
    from types import SimpleNamespace

    from api.settings import Settings

    app = create_app(SimpleNamespace(settings=Settings(), timings=None))  # type: ignore[arg-type]
    return sorted(
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    )


TABLE = read_table(TABLE_DOC.read_text())
SIGN_IN = read_table(TABLE_DOC.read_text(), SIGN_IN_HEADING)


def test_the_table_names_every_operation_of_the_document_and_no_other() -> None:
    documented, tabled = set(documented_operations()), set(TABLE)
    assert not documented - tabled, f"not in the table: {sorted(documented - tabled)}"
    assert not tabled - documented, f"in the table, not in the API: {sorted(tabled - documented)}"


def _path(template: str, hive: Hive, bot_id: UUID, message_id: UUID) -> str:
    names: dict[str, Any] = {
        "key_id": hive.spare_key(),
        "bot_id": bot_id,
        "task_id": hive.task_id,
        "schedule_id": hive.schedule_id,
        "message_id": message_id,
        "incident_id": "00000000-0000-4000-8000-000000000013",  # none: 404 once let through
        "name": "default",
        "version": 1,
    }
    return re.sub(r"\{(\w+)\}", lambda m: str(names[m.group(1)]), template)


@pytest.mark.parametrize("operation", sorted(TABLE))
def test_every_caller_gets_what_the_table_says(hive: Hive, operation: str) -> None:
    method, template = operation.split(" ", 1)
    bot_id, own_key, other_key = hive.bots()
    path = _path(template, hive, bot_id, hive.message_to(bot_id))
    tokens = {**hive.tokens, "own bot": own_key, "other bot": other_key}
    # The stream of a bot's messages never ends by itself: only who gets in is asked.
    streaming = template.endswith("/stream")
    wrong = []
    for caller in sorted(CALLERS, key=_admin_last):
        expected = TABLE[operation][caller]
        headers = _bearer(tokens[caller])
        if streaming:
            with hive.client.stream(method, path, headers=headers) as answer:
                status = answer.status_code
        else:
            status = hive.client.request(method, path, headers=headers).status_code
        let_through = status not in (401, 403)
        if (expected == LET_THROUGH and not let_through) or (
            expected != LET_THROUGH and str(status) != expected
        ):
            wrong.append(f"{caller}: {status}, the table says {expected}")
    assert not wrong, f"{operation}: " + "; ".join(wrong)


def _admin_last(caller: str) -> int:
    """An admin's call may end what the others ask about (a bot deregistered, a task
    cancelled): it goes last, after the bot's own, which may end its own bot too."""
    return {"own bot": 1, "admin": 2}.get(caller, 0)


def test_the_dashboard_signs_in_whom_its_table_says(hive: Hive) -> None:
    """The dashboard follows the API's table: only client and admin keys sign in."""
    ((operation, expected),) = SIGN_IN.items()
    method, path = operation.split(" ", 1)
    _, own_key, other_key = hive.bots()
    tokens = {**hive.tokens, "own bot": own_key, "other bot": other_key}
    origin = {"Origin": str(hive.client.base_url).rstrip("/")}
    wrong = []
    for caller in CALLERS:
        token = tokens[caller]
        body = {} if token is None else {"key": token}
        status = hive.client.request(method, path, json=body, headers=origin).status_code
        if (expected[caller] == LET_THROUGH) != (status == 200) or (
            expected[caller] != LET_THROUGH and str(status) != expected[caller]
        ):
            wrong.append(f"{caller}: {status}, the table says {expected[caller]}")
    assert not wrong, "; ".join(wrong)
