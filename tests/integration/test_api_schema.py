"""The API against its own OpenAPI document, by property-based testing (schemathesis).

Every operation the document lists is called with inputs generated from its schema (valid
ones and, in the negative phase, invalid ones), each with four keys: an admin key, a client
key, an enrolment key and a bot's own token. Every answer must be no 5xx, and conform to the
document: a status code the operation lists, its content type, its body schema.

One hive serves the whole run (a Node on a database of its own, real PostgreSQL, the app
called in-process). The number of examples is bounded (``EXAMPLES`` per operation and
phase) so the suite stays inside its time; ``APIARY_SCHEMA_EXAMPLES`` raises it for a
longer hunt.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from uuid import uuid4

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import BaseSchema, Case, GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.container import Container
from api.settings import Settings
from domain.cause import Cause
from domain.keys import Role
from tests.integration.helpers import served_hive

EXAMPLES = int(os.environ.get("APIARY_SCHEMA_EXAMPLES", "12"))
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# What would make one example take seconds instead of milliseconds, held small: a wait for
# the views to reach a far position (up to 5 s), a long-poll (up to 30 s).
SHORT_WAITS = {"min_position": 0, "wait_s": 0}
SETUP = Cause("setup", "schema-test")


@dataclass(frozen=True)
class Keys:
    admin: str
    client: str
    enrolment: str
    bot: str

    def tokens(self) -> list[str]:
        return [self.admin, self.client, self.enrolment, self.bot]


@pytest.fixture(scope="module")
def served(pg_server_url: str, migrated_template: str) -> Iterator[tuple[FastAPI, Keys]]:
    with served_hive(pg_server_url, migrated_template) as node:
        hive = node.hive
        _, own, _ = hive.fleet.register(
            name="schema-bot",
            capabilities=["code"],
            max_concurrency=4,
            version_label="1",
            cause=SETUP,
            pool=None,
            launch_id=None,
        )
        keys = Keys(
            admin=hive.keys.issue("admin", Role.ADMIN, SETUP).token,
            client=hive.keys.issue("client", Role.CLIENT, SETUP).token,
            enrolment=hive.keys.issue("enrol", Role.BOT, SETUP).token,
            bot=own.token,
        )
        yield create_app(node.container()), keys


def container_of_app(app: FastAPI) -> Container:
    container: Container = app.state.container
    return container


def cases() -> list[tuple[str, str, GenerationMode]]:
    """Every operation of the document as (METHOD, path, mode): read from the app's own
    document (``create_app`` builds it without connecting to anything). Inputs that do not
    fit the document (the negative mode) only for an operation that takes any."""
    app = create_app(SimpleNamespace(settings=Settings(), timings=None))  # type: ignore[arg-type]
    return [
        (method.upper(), path, mode)
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        for mode in GenerationMode
        if mode is GenerationMode.POSITIVE
        or operation.get("parameters")
        or operation.get("requestBody")
    ]


@pytest.fixture(scope="module")
def api_schema(served: tuple[FastAPI, Keys]) -> BaseSchema:
    app, _ = served
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize(("method", "path", "mode"), cases())
def test_every_answer_conforms_to_the_document(
    api_schema: BaseSchema,
    served: tuple[FastAPI, Keys],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[path][method]
    keys = served[1]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def every_key_gets_a_documented_answer(case: Case) -> None:
        for field, value in SHORT_WAITS.items():
            for part in (case.query, case.body):
                if isinstance(part, dict) and field in part:
                    part[field] = value
        for token in keys.tokens():
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
            if path == "/v1/mode" and method == "PUT":  # critical would refuse the client
                container_of_app(served[0]).hive.modes.clear("schema test", SETUP)

    every_key_gets_a_documented_answer()


@pytest.mark.parametrize(("method", "path"), sorted({(m, p) for m, p, _ in cases()}))
def test_an_unknown_query_parameter_is_refused_everywhere(
    served: tuple[FastAPI, Keys], method: str, path: str
) -> None:
    """As an unknown body field is: a typo never quietly changes what is asked."""
    app, keys = served
    concrete = re.sub(r"\{[^}]+\}", str(uuid4()), path)
    with TestClient(app) as client:
        answer = client.request(
            method,
            concrete,
            params={"stat": "running"},
            headers={"Authorization": f"Bearer {keys.admin}"},
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"] == [
        {"loc": ["query", "stat"], "msg": "no such query parameter", "type": "extra_forbidden"}
    ]
