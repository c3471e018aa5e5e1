"""What a state-changing dashboard request must show: that the dashboard's own pages sent it.

A browser sends the session cookie with every request to the dashboard, whoever's page
made it; so a request that changes something (any method but GET, HEAD and OPTIONS) must
also prove where it comes from, twice over:

- its ``Origin`` (or, when a browser sends none, its ``Referer``) is this server's own
  origin: the scheme the request came over (https behind a proxy only when the proxy is
  trusted: ``APIARY_FORWARDED_ALLOW_IPS``) and its ``Host``. A request with neither, or
  ``Origin: null``, is refused: every browser sends an Origin on a POST. Signing in is
  held to this alone (there is no session yet);
- once signed in, it carries the session's CSRF token in ``X-CSRF-Token``: derived from
  the session's own token (an HMAC), handed to the page in its shell and sent by the
  page's script. Another site can make the browser send the cookie, but cannot read the
  page, so it cannot know the token. The token dies with its session.

SameSite=Strict on the cookie is a third wall; these two hold without it.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request

from api.errors import Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_HEADER = "X-CSRF-Token"
DEFAULT_PORTS = {"http": 80, "https": 443}
PURPOSE = b"apiary-dashboard-csrf"


def same_origin(request: Request) -> None:
    """The dashboard router's check of every request: 403 for a state-changing one that
    does not come from this server's own pages."""
    if request.method in SAFE_METHODS:
        return
    own = origin_of(f"{request.url.scheme}://{request.headers.get('host', '')}")
    origin, referer = request.headers.get("origin"), request.headers.get("referer")
    claimed = origin_of(origin) if origin is not None else origin_of(referer or "")
    if claimed is None:
        raise Forbidden(
            "a change to the dashboard must come from its own pages: this request names "
            "no origin (no Origin or Referer header, or Origin: null)"
        )
    if claimed != own:
        raise Forbidden(
            f"a change to the dashboard must come from its own pages ({own}); this one "
            "comes from another origin (behind a proxy that terminates TLS, set "
            "APIARY_FORWARDED_ALLOW_IPS to the proxy's address)"
        )


def guarded_router() -> APIRouter:
    """A router of the dashboard's: every state-changing request it takes must come from
    this server's own pages (403 otherwise), and it is no part of the OpenAPI document."""
    return APIRouter(
        prefix="/dashboard", include_in_schema=False, dependencies=[Depends(same_origin)]
    )


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, the default port left out (as browsers
    write an Origin); None for anything else."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[parts.scheme]:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


def token_for(session_token: str) -> str:
    """The CSRF token of a session: one-way from its token, so it reveals nothing of it."""
    return hmac.new(session_token.encode(), PURPOSE, hashlib.sha256).hexdigest()


def check_token(request: Request, session_token: str) -> None:
    """403 unless a state-changing request carries its session's CSRF token."""
    given = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode(), token_for(session_token).encode()):
        raise Forbidden(f"a change to the dashboard needs the page's {TOKEN_HEADER} header")
