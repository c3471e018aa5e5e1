"""Security headers on every response: a plain ASGI middleware, outermost.

Every answer (the API's data and problems, the dashboard's pages, data and stream, a 404,
the last-resort 500) gets:

- ``Content-Security-Policy``: nothing but this origin's own scripts, styles, images and
  connections; no inline script, no plugin, no ``<base>``; forms post only here; no page
  may frame it (``frame-ancestors 'none'``). A JSON answer is not a page, but a browser
  tricked into rendering one as HTML then runs nothing;
- ``X-Frame-Options: DENY`` (frame-ancestors for browsers that predate it),
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` (the dashboard's
  state-changing requests may be checked by their Referer; no URL leaves for elsewhere);
- ``Cache-Control: no-store``, unless the route said how it may be cached: data and keys
  must not sit in a browser's or a proxy's cache. The dashboard's static files (the same
  for everyone, no secret) are left cacheable.

A path may have a policy of its own (``policies``): the API docs page loads Swagger UI
from its CDN with one inline script, allowed by that script's hash (``api.docs_page``).
Every header is built once, at start-up: a response costs a dictionary lookup and a list
concatenation.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)
NO_STORE = (b"cache-control", b"no-store")
CACHEABLE = ("/dashboard/static/",)  # path prefixes whose answers may be cached

Headers = tuple[tuple[bytes, bytes], ...]


class SecurityHeaders:
    def __init__(
        self, app: ASGIApp, *, csp: str = CSP, policies: Mapping[str, str] | None = None
    ) -> None:
        self.app = app
        self.default = _headers(csp)
        self.by_path = {path: _headers(policy) for path, policy in (policies or {}).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        added = self.by_path.get(path, self.default)
        store = not path.startswith(CACHEABLE)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if store and not any(name == b"cache-control" for name, _ in headers):
                    headers.append(NO_STORE)
                message["headers"] = headers + list(added)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _headers(csp: str) -> Headers:
    return ((b"content-security-policy", csp.encode()), *ALWAYS)
