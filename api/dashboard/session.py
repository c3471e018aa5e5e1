"""Dashboard sign-in: an API key proven once opens a server-side session; the browser
keeps only the session's token, in an HttpOnly cookie.

A browser cannot put ``Authorization: Bearer`` on a page load or an EventSource, so the
dashboard's requests carry a cookie (HttpOnly, SameSite=Strict, path /dashboard, Secure
whenever the request came over https). It holds a session token (``aps_...``), never the
key: signing out closes the session in the log, after which the old cookie is worth
nothing, on the dashboard (every process, within a second) and as a bearer key (it never
was one). Every request checks the session (open, not expired) and then its key through
the key ring, as a bearer key is checked: revoking the key ends its sessions. A request
that changes something also shows the session's CSRF token (``api.dashboard.csrf``).

The dashboard follows the API's roles: it shows tasks with their payloads, which the API
shows to client and admin keys only, so only those keys sign in (a bot's own key or an
enrolment key is refused); what the API keeps to admin keys (the config) the dashboard
shows to admin keys only (``AdminViewer``: 403 for any other).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from api.auth import Principal, key_ring
from api.container import container_of
from api.dashboard.csrf import SAFE_METHODS, check_token
from api.dashboard.session_book import LIFETIME, SessionBook
from api.errors import Forbidden
from domain.keys import Role

COOKIE = "apiary_session"
LEGACY_COOKIE = "apiary_dashboard_key"  # held the raw key before sessions: cleared when seen
PATH = "/dashboard"


class SignInNeeded(Exception):
    """No valid session in the cookie: pages redirect to the sign-in form, data gets 401."""


def may_view(principal: Principal) -> bool:
    """As the API's task reads admit: a client or an admin key (never a bot's)."""
    return principal.bot_id is None and principal.role in (Role.CLIENT, Role.ADMIN)


def sessions_of(request: Request) -> SessionBook:
    book = container_of(request).sessions
    if book is None:  # a composition mistake, not a request's fault
        raise RuntimeError("the dashboard's sessions are not wired into this container")
    return book


def signed_in(request: Request, token: str) -> Principal | None:
    """Who the session ``token`` signs in, while the session and its key both hold."""
    keys = key_ring(request)  # first: 503 at once while the database is known to be away
    session = sessions_of(request).session(token)
    principal = None if session is None else keys.principal_of(session.key_id)
    return principal if principal is not None and may_view(principal) else None


def viewer(request: Request) -> Principal:
    token = request.cookies.get(COOKIE)
    principal = signed_in(request, token) if token else None
    if principal is None or token is None:
        raise SignInNeeded()
    if request.method not in SAFE_METHODS:
        check_token(request, token)
    request.state.principal = principal.actor
    return principal


Viewer = Annotated[Principal, Depends(viewer)]


def keep_session(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(LIFETIME.total_seconds()),
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LEGACY_COOKIE, path=PATH)


def drop_session(response: Response, request: Request) -> None:
    """Tell the browser to forget its cookies (the session itself is closed, or dead)."""
    for name in (COOKIE, LEGACY_COOKIE):
        if name in request.cookies:
            response.delete_cookie(
                name,
                path=PATH,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )


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
