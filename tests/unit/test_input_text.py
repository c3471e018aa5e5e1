"""One rule for every text of every input (``api.schemas.common.Input``): no NUL, no lone
surrogate, at any depth, in any field. Found by outside testing: an idempotency key of
"\\u0000" was accepted, and the tasks view could never store it."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import types
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.params import Depends
from fastapi.routing import APIRoute
from pydantic import BaseModel

import api.routes
from api.schemas.common import MAX_BYTES_MARK, Input, storable_text
from domain.hive import Hive
from tests.unit.test_api_contract import PROBLEM, World, world_of


@pytest.fixture
def world() -> Iterator[World]:
    with world_of(Hive(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})) as w:
        yield w


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models an endpoint's parameter takes (its body, or a query model)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        yield annotation
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType):  # an optional body
        for option in typing.get_args(annotation):
            yield from _models(option)


def _routes() -> Iterator[APIRoute]:
    """Every route of the API's and the dashboard's routers."""
    modules = [f"api.routes.{m.name}" for m in pkgutil.iter_modules(api.routes.__path__)]
    for name in [*modules, "api.dashboard.routes"]:
        for route in importlib.import_module(name).router.routes:
            if isinstance(route, APIRoute):
                yield route


def test_every_body_and_query_model_the_api_takes_is_an_input() -> None:
    taken: dict[str, type[BaseModel]] = {}
    for route in _routes():
        hints = typing.get_type_hints(route.endpoint, include_extras=True)
        for name, annotation in hints.items():
            if name == "return":
                continue
            for model in _models(annotation):
                taken[f"{route.path} {name}"] = model
    # (the walk finds them: the bodies of each room, a query model, the dashboard's sign-in)
    assert {"/v1/tasks body", "/v1/tasks query", "/v1/bots/{bot_id}/heartbeat body"} <= set(taken)
    assert {"/v1/messages body", "/v1/config body", "/dashboard/session body"} <= set(taken)
    assert {where: m.__name__ for where, m in taken.items() if not issubclass(m, Input)} == {}


def _bare_texts(annotation: Any) -> Iterator[Any]:
    """The text parameters of an endpoint that are not in a model: each ``str`` (alone, or
    as an option), with the metadata that constrains it."""
    metadata: list[Any] = []
    while typing.get_origin(annotation) is typing.Annotated:
        annotation, *more = typing.get_args(annotation)
        metadata += more
    if annotation is str:
        yield metadata
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            for inner in _bare_texts(option):
                yield [*metadata, *inner]


def _ruled(metadata: list[Any]) -> bool:
    """Held to the one rule, or not an input at all (a dependency the server computes)."""
    return any(
        getattr(m, "func", None) is storable_text or isinstance(m, Depends) for m in metadata
    )


def test_every_text_parameter_outside_a_model_is_held_to_the_rule() -> None:
    loose = {}
    for route in _routes():
        hints = typing.get_type_hints(route.endpoint, include_extras=True)
        for name, annotation in hints.items():
            if name == "return":
                continue
            for metadata in _bare_texts(annotation):
                if not _ruled(metadata):
                    loose[f"{route.path} {name}"] = metadata
    assert loose == {}


NUL, SURROGATE = "\u0000", "\ud800"
JSON_BODY = {"Content-Type": "application/json"}


@pytest.mark.parametrize("bad", [NUL, f"a{NUL}b", f"x{SURROGATE}"])
@pytest.mark.parametrize(
    "task",
    [
        {"type": "code", "idempotency_key": "{bad}"},
        {"type": "code", "payload": {"note": "{bad}"}},
        {"type": "code", "payload": {"{bad}": 1}},
        {"type": "code", "payload": [["deep", {"er": "{bad}"}]]},
    ],
)
def test_a_task_with_text_the_hive_cannot_store_is_refused_and_leaves_no_trace(
    world: World, task: dict[str, Any], bad: str
) -> None:
    def filled(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{bad}", bad)
        if isinstance(value, dict):
            return {filled(k): filled(v) for k, v in value.items()}
        if isinstance(value, list):
            return [filled(v) for v in value]
        return value

    before = world.persisted()
    body = filled(task)
    for path, sent in (("/v1/tasks", body), ("/v1/tasks/batch", {"tasks": [body]})):
        response = world.client.post(  # as JSON escapes: a lone surrogate is not UTF-8
            path, content=json.dumps(sent), headers={**world.auth("client"), **JSON_BODY}
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
    assert world.persisted() == before


def test_a_query_with_a_nul_is_refused(world: World) -> None:
    response = world.client.get("/v1/tasks", params={"cursor": NUL}, headers=world.auth("client"))
    assert response.status_code == 422, response.text


def test_a_text_parameter_of_its_own_with_a_nul_is_refused(world: World) -> None:
    response = world.client.get(
        "/v1/messages", params={"conversation": "ops", "cursor": NUL}, headers=world.auth("admin")
    )
    assert response.status_code == 422, response.text
    response = world.client.get("/v1/pools/a%00b/launches", headers=world.auth("client"))
    assert response.status_code == 422, response.text


def _unbounded(schema: dict[str, Any], defs: dict[str, Any], at: str) -> Iterator[str]:
    """Where a JSON schema lets a text, a list or a map grow without a declared limit."""
    if MAX_BYTES_MARK in schema:  # a JSON document: bounded by its size
        return
    if "$ref" in schema:
        yield from _unbounded(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, at)
        return
    for option in schema.get("anyOf", []) + schema.get("allOf", []):
        yield from _unbounded(option, defs, at)
    kind = schema.get("type")
    if kind == "string" and not {"maxLength", "enum", "const", "format"} & schema.keys():
        yield f"{at}: a text with no maxLength"
    if kind == "array":
        if "maxItems" not in schema:
            yield f"{at}: a list with no maxItems"
        yield from _unbounded(schema.get("items", {}), defs, f"{at}[]")
    for name, field in schema.get("properties", {}).items():
        yield from _unbounded(field, defs, f"{at}.{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        if "maxProperties" not in schema:
            yield f"{at}: a map with no maxProperties"
        yield from _unbounded(extra, defs, f"{at}.*")
    if kind is None and not {"anyOf", "allOf", "enum", "const"} & schema.keys():
        yield f"{at}: any JSON, with no size limit declared"


def test_every_text_list_and_map_an_input_takes_has_a_declared_limit() -> None:
    """What must hold 1: a text, a list or a map of any input declares its limit in the
    document (a JSON document, e.g. a payload, is bounded by its size in bytes)."""
    unbounded = []
    for route in _routes():
        hints = typing.get_type_hints(route.endpoint, include_extras=True)
        for name, annotation in hints.items():
            for model in [] if name == "return" else _models(annotation):
                schema = model.model_json_schema()
                found = _unbounded(schema, schema.get("$defs", {}), model.__name__)
                unbounded += [f"{route.path}: {where}" for where in found]
    assert not unbounded, "\n".join(sorted(set(unbounded)))
