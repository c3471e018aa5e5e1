"""Dashboard sign-in: an API key entered once, kept in an HttpOnly cookie.

A browser cannot put ``Authorization: Bearer`` on a page load or an EventSource, so the
key travels in a cookie (HttpOnly, SameSite=Strict, path /dashboard) and is checked on
every request exactly as a bearer key is: a revoked key stops working at once. The
dashboard follows the API's roles: it shows tasks with their payloads, which the API shows
to client and admin keys only, so only those keys sign in (a bot's own key or an
enrolment key is refused, and a cookie holding one is worth nothing); what the API keeps
to admin keys (the config) the dashboard shows to admin keys only (``AdminViewer``: 403 for
any other).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.auth import Principal, principal_for
from api.errors import Forbidden
from domain.keys import Role

COOKIE = "apiary_dashboard_key"
PATH = "/dashboard"


class SignInNeeded(Exception):
    """No valid key in the cookie: pages redirect to the sign-in form, data gets 401."""


def may_view(principal: Principal) -> bool:
    """As the API's task reads admit: a client or an admin key (never a bot's)."""
    return principal.bot_id is None and principal.role in (Role.CLIENT, Role.ADMIN)


def viewer(request: Request) -> Principal:
    token = request.cookies.get(COOKIE)
    principal = principal_for(request, token) if token else None
    if principal is None or not may_view(principal):
        raise SignInNeeded()
    request.state.principal = principal.actor
    return principal


Viewer = Annotated[Principal, Depends(viewer)]


def is_admin(principal: Principal) -> bool:
    """As the API's admin routes admit: an admin key (never a bot's own key)."""
    return principal.role is Role.ADMIN and principal.bot_id is None


def admin_only(principal: Principal) -> str:
    """What a page says to a viewer who is not an admin."""
    return (
        f"Only an admin key may see this: you are signed in as {principal.actor} "
        f"({principal.role} key)."
    )


def admin_viewer(principal: Viewer) -> Principal:
    if not is_admin(principal):
        raise Forbidden(admin_only(principal))
    return principal


AdminViewer = Annotated[Principal, Depends(admin_viewer)]
