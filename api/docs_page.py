"""The API's docs page (``/docs``): FastAPI's Swagger UI, under a policy of its own.

Swagger UI comes from its CDN (cdn.jsdelivr.net) and is started by one inline script, so
the strict policy every other answer gets (``api.security_headers``) would leave the page
blank. This page's policy admits the CDN's scripts and styles and that one inline script
by its SHA-256 hash (computed here from the very HTML served, once): no
``'unsafe-inline'`` for scripts, so nothing injected into the page runs. Swagger UI sets
inline styles, so ``style-src`` admits them on this page only; it draws its icons as
``data:`` images. The page itself shows only the OpenAPI document, which any client can
read.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

PATH = "/docs"
CDN = "https://cdn.jsdelivr.net"
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def page(title: str, openapi_url: str) -> bytes:
    return bytes(get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} - Swagger UI").body)


def policy(html: bytes) -> str:
    """The page's CSP: its inline scripts admitted by hash, and nothing else inline."""
    hashes = " ".join(script_hash(s) for s in INLINE_SCRIPT.findall(html.decode()))
    return (
        f"default-src 'none'; script-src {CDN} {hashes}; style-src {CDN} 'unsafe-inline'; "
        f"img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def script_hash(script: str) -> str:
    """A CSP source admitting exactly this inline script."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"


def install(app: FastAPI) -> str:
    """Serve the page (the app is made with ``docs_url=None``); returns its policy."""
    if app.openapi_url is None:  # a composition mistake: the page shows that document
        raise RuntimeError("the docs page needs the app's OpenAPI document")
    html = page(app.title, app.openapi_url)

    @app.get(PATH, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(html)

    return policy(html)
