"""The OpenAPI document tells every status an operation can answer with.

Routes declare the problems their own code raises (``problem_responses``). What the door
answers for any route is added here, once, from what the middleware and the error handlers
really do:

- a body that is not JSON: 400 (every operation that takes a body);
- a body over the limit: 413 (any request may carry a body, so every operation);
- a query parameter the route does not take: 422 (``api.query``), on every operation;
- FastAPI's own 422 for a bad parameter: a problem like every other, not its
  ``HTTPValidationError`` under ``application/json``;
- a bug: 500, a problem naming the request id;
- too many requests: 429 with ``Retry-After`` and the RateLimit headers, wherever 401 is
  (whatever authenticates is rate limited: per key, and per address for failures,
  ``api.throttle``).

Every problem is listed as ``application/problem+json``, the media type it is served with.
``tests/integration/test_api_schema.py`` holds the API to this document.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from api.errors import PROBLEM_MEDIA_TYPE

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
FASTAPI_422_REF = {"$ref": "#/components/schemas/HTTPValidationError"}
FASTAPI_422_SCHEMAS = ("HTTPValidationError", "ValidationError")

# Status -> which operations the door may answer it for, whatever their route says.
DoorRule = Callable[[dict[str, Any]], bool]
DOOR_PROBLEMS: dict[int, DoorRule] = {
    400: lambda operation: "requestBody" in operation,
    413: lambda operation: True,
    422: lambda operation: True,
    500: lambda operation: True,
}


def document_problems(app: FastAPI) -> None:
    """Wrap ``app.openapi`` so the document it serves lists the door's problems."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_door_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _with_door_problems(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "Problem" not in components:  # an app of no route that declares a problem
        from api.schemas.common import Problem

        components["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, applies in DOOR_PROBLEMS.items():
                if applies(operation) and str(status) not in responses:
                    responses[str(status)] = _problem(status)
            if "401" in responses and "429" not in responses:
                responses["429"] = _rate_limited()
            for status, response in responses.items():
                content = response.get("content", {})
                json_schema = content.get("application/json", {}).get("schema")
                if json_schema == FASTAPI_422_REF:
                    responses[status] = _problem(int(status))
                elif json_schema == PROBLEM_REF:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    for name in FASTAPI_422_SCHEMAS:  # nothing refers to them any more
        components.pop(name, None)
    return schema


RATE_LIMIT_HEADERS = {
    "Retry-After": "seconds until a request would be admitted",
    "RateLimit-Limit": "the bucket's burst",
    "RateLimit-Remaining": "requests left now (0)",
    "RateLimit-Reset": "seconds until the bucket is full again",
}


def _rate_limited() -> dict[str, Any]:
    return {
        **_problem(429),
        "headers": {
            name: {"description": text, "schema": {"type": "integer"}}
            for name, text in RATE_LIMIT_HEADERS.items()
        },
    }


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
    }
