"""The ASGI application: ``create_app(container)`` wires routes, errors and middleware."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from api import errors
from api.container import Container
from api.features import Feature
from api.features.catalog import FEATURES
from api.middleware import BodyLimit, RequestContext

BODY_LIMIT_FACTOR = 8  # a body may carry many payloads (a batch): 8 x APIARY_MAX_PAYLOAD_BYTES
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def create_app(container: Container, features: list[Feature] = FEATURES) -> FastAPI:
    """An app serving ``container`` with every feature's routes; builds nothing and
    connects to nothing itself.

    Responses are serialized by pydantic straight to JSON bytes (every route declares its
    response model), so no ``default_response_class`` is set: FastAPI 0.165 deprecates
    ``ORJSONResponse`` and a custom class would turn that fast path off. Problems are
    rendered with orjson (``api.errors.ProblemResponse``).
    """
    settings = container.settings
    app = FastAPI(
        title="Apiary",
        summary="The control plane of a hive of worker bots.",
        version="0.1.0",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        middleware=[
            Middleware(RequestContext),
            Middleware(
                BodyLimit,
                max_body_bytes=lambda: container.settings.max_payload_bytes * BODY_LIMIT_FACTOR,
            ),
        ],
    )
    app.state.container = container
    errors.install(app, retry_after_s=settings.retry_after_s)
    for feature in features:
        feature.routes(app)
    _document_problems_as_problem_json(app)
    return app


def _document_problems_as_problem_json(app: FastAPI) -> None:
    """FastAPI lists every declared response under the route's media type; problems are
    served as ``application/problem+json``, so say so in the OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    _document_rate_limit(operation.get("responses", {}))
                    for response in operation.get("responses", {}).values():
                        content = response.get("content", {})
                        if content.get("application/json", {}).get("schema") == PROBLEM_REF:
                            content[errors.PROBLEM_MEDIA_TYPE] = content.pop("application/json")
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


RATE_LIMIT_HEADERS = {
    "Retry-After": "seconds until a request would be admitted",
    "RateLimit-Limit": "the bucket's burst",
    "RateLimit-Remaining": "requests left now (0)",
    "RateLimit-Reset": "seconds until the bucket is full again",
}


def _document_rate_limit(responses: dict[str, Any]) -> None:
    """Whatever authenticates (answers 401) is rate limited too (``api.throttle``): per key,
    and per address for failed authentication. So 429 is listed wherever 401 is."""
    if "401" not in responses or "429" in responses:
        return
    responses["429"] = {
        "description": "Too Many Requests",
        "headers": {
            name: {"description": text, "schema": {"type": "integer"}}
            for name, text in RATE_LIMIT_HEADERS.items()
        },
        "content": {"application/json": {"schema": PROBLEM_REF}},
    }
