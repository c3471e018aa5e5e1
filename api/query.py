"""Unknown query parameters are refused, on every route, as unknown body fields are.

FastAPI ignores a query parameter a route does not declare, so ``?stat=running`` (a typo
of ``state``) would quietly list everything. ``refuse_unknown_query`` is an app-wide
dependency: a request whose query string names a parameter its route does not take gets a
422 (``extra_forbidden``, as pydantic says of an unknown body field). What a route takes is
read once per route from its declared parameters (a query model's fields included). A
request without a query string costs one test.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api.errors import invalid_all

_declared: dict[int, frozenset[str]] = {}


async def refuse_unknown_query(request: Request) -> None:
    """422 for a query parameter the matched route does not declare."""
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _declared.get(id(route))
    if declared is None:
        declared = _declared[id(route)] = frozenset(_names(route.dependant))
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in declared]
    if unknown:
        raise invalid_all(
            [(("query", name), "extra_forbidden", "no such query parameter") for name in unknown]
        )


def _names(dependant: Dependant) -> Iterator[str]:
    for field in dependant.query_params:
        annotation = field.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, info in annotation.model_fields.items():
                yield info.alias or name
        else:
            yield field.alias
    for sub in dependant.dependencies:
        yield from _names(sub)
