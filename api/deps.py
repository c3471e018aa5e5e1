"""The dependencies routes declare, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.auth import Principal, require, require_bot_self, require_enrolment, require_sender
from api.container import Container, container_of
from domain.keys import Role


async def _container(request: Request) -> Container:  # async: no thread-pool hop
    """The container; refused at once (503) while the database is known to be away."""
    container = container_of(request)
    container.gate.check()
    return container


async def _request_id(request: Request) -> str:
    """The id ``RequestContext`` gave the request (recorded on every event it causes)."""
    rid = request.scope.get("state", {}).get("request_id")
    if not isinstance(rid, str):  # only without the middleware, i.e. a wiring mistake
        raise RuntimeError("the RequestContext middleware is not installed")
    return rid


Ctx = Annotated[Container, Depends(_container)]
RequestId = Annotated[str, Depends(_request_id)]

Client = Annotated[Principal, Depends(require(Role.CLIENT))]
Enrolment = Annotated[Principal, Depends(require_enrolment)]
BotSelf = Annotated[Principal, Depends(require_bot_self())]
BotSelfOrAdmin = Annotated[Principal, Depends(require_bot_self(allow_admin=True))]
Sender = Annotated[Principal, Depends(require_sender)]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
