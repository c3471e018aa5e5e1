"""Dashboard sign-in: an API key entered once, kept in an HttpOnly cookie.

A browser cannot put ``Authorization: Bearer`` on a page load or an EventSource, so the
key travels in a cookie (HttpOnly, SameSite=Strict, path /dashboard) and is checked on
every request exactly as a bearer key is: a revoked key stops working at once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.auth import Principal, principal_for

COOKIE = "apiary_dashboard_key"
PATH = "/dashboard"


class SignInNeeded(Exception):
    """No valid key in the cookie: pages redirect to the sign-in form, data gets 401."""


def viewer(request: Request) -> Principal:
    token = request.cookies.get(COOKIE)
    principal = principal_for(request, token) if token else None
    if principal is None:
        raise SignInNeeded()
    request.state.principal = principal.actor
    return principal


Viewer = Annotated[Principal, Depends(viewer)]
