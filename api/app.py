"""The ASGI application: ``create_app(container)`` wires routes, errors and middleware."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from starlette.middleware import Middleware

from api import docs_page, errors
from api.container import Container
from api.features import Feature
from api.features.catalog import FEATURES
from api.middleware import BodyLimit, RequestContext
from api.mode_gate import ModeHeader
from api.openapi import document_problems
from api.query import refuse_unknown_query
from api.security_headers import SecurityHeaders

BODY_LIMIT_FACTOR = 8  # a body may carry many payloads (a batch): 8 x APIARY_MAX_PAYLOAD_BYTES


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
        docs_url=None,  # served by api.docs_page, under a policy of its own
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(refuse_unknown_query)],
        middleware=[
            Middleware(RequestContext, timings=container.timings),
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
    document_problems(app)
    app.add_middleware(ModeHeader, mode=lambda: container.modes)  # every answer says the mode
    # Outermost (added last): every answer gets the headers, a 500 or a 413 too.
    app.add_middleware(SecurityHeaders, policies={docs_page.PATH: docs_page.install(app)})
    return app
