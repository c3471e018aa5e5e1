"""A fake hive behind the bot's ``Transport`` port (a port we own): each request goes to
the test's handler, which answers it, or raises ``TransportError`` to play a hive that
cannot be reached or an answer lost on the way."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from runtime.bot.transport import Headers, Response, Timeouts, TransportError


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Headers
    body: bytes | None
    timeouts: Timeouts


class FakeTransport:
    def __init__(self, handler: Callable[[Request], Response]) -> None:
        self._handler = handler
        self._closed = False

    def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
    ) -> Response:
        if self._closed:
            raise TransportError("the fake hive's transport is closed")
        return self._handler(Request(method, path, Headers(headers), body, timeouts))

    def close(self) -> None:
        self._closed = True


def answer(status: int, data: object, headers: Mapping[str, str] | None = None) -> Response:
    """An answer with ``data`` as its JSON body."""
    fields = {"Content-Type": "application/json", **(headers or {})}
    return Response(status, Headers(fields), orjson.dumps(data))
