"""The door: what an HTTP connection must do before any ASGI code (or key check) runs.

Anyone can open a connection, so these limits hold without a key, in uvicorn's httptools
protocol itself (``Door`` is passed to ``uvicorn.Config`` as ``http=``):

- a request head (request line and headers) of at most ``max_head_bytes``, and at most
  ``max_headers`` headers: otherwise 431 and the connection is closed. httptools buffers a
  header's value whole before handing it over (and copies the buffer on every read), so the
  bytes are counted as they arrive, not only in its callbacks: a 64 MB header is refused
  after its first few hundred KiB instead of being read for seconds with the event loop
  stalled for every other client;
- a head must be complete within ``header_timeout_s`` of the connection opening or of the
  previous response: otherwise the connection is closed (with 408 when a head had begun),
  so a client that sends nothing, or trickles a byte at a time, holds no connection for
  long. Idle keep-alive connections are closed after uvicorn's ``timeout_keep_alive``.

Per request this costs a few attribute stores and comparisons, and one timer armed after
each response (beside uvicorn's own keep-alive timer) and cancelled when the next head is
complete.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.errors import ProblemResponse, problem

log = logging.getLogger(__name__)

# The request line's and each header's framing, beside what the parser hands over:
# "METHOD SP url SP HTTP/1.1 CRLF" and "name: value CRLF".
REQUEST_LINE_FRAMING = 16
HEADER_FRAMING = 4


@dataclass(frozen=True)
class DoorLimits:
    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0


def door(limits: DoorLimits) -> type[Door]:
    """The protocol class for ``uvicorn.Config(http=...)``, holding these limits."""
    head_too_large = problem(
        431,
        "headers-too-large",
        f"the request head must be at most {limits.max_head_bytes} bytes"
        f" in at most {limits.max_headers} headers",
        headers={"Connection": "close"},
    )
    timed_out = problem(
        408,
        "request-timeout",
        f"the request head was not complete within {limits.header_timeout_s:g} s",
        headers={"Connection": "close"},
    )
    return type(
        "ConfiguredDoor",
        (Door,),
        {
            "limits": limits,
            "head_too_large": head_too_large,
            "head_too_large_bytes": _raw(head_too_large),
            "timed_out_bytes": _raw(timed_out),
        },
    )


class Door(HttpToolsProtocol):
    limits = DoorLimits()
    head_too_large: ProblemResponse
    head_too_large_bytes = b""
    timed_out_bytes = b""

    # Per connection. ``head_open``: a head has begun and is not complete.
    # ``head_bytes``: bytes of the reads that came while it was open (an undercount by the
    # read it began in, which may also hold the end of an earlier request's body: so an
    # open head is refused past the limit plus one read, never a legitimate one early).
    # ``first_read``: the length of that first read (a complete head is measured exactly
    # only when the two together pass the limit).
    head_open = False
    head_bytes = 0
    first_read = 0
    last_read = 0
    head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.last_read = len(data)
        if self.head_open:
            self.head_bytes += self.last_read
        super().data_received(data)
        if self.head_open and self.head_bytes > self.limits.max_head_bytes:
            self._refuse_open_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_open = True
        self.head_bytes = 0
        self.first_read = self.last_read

    def on_headers_complete(self) -> None:
        self.head_open = False
        self._disarm_head_timer()
        if len(self.headers) > self.limits.max_headers or (
            self.head_bytes + self.first_read > self.limits.max_head_bytes
            and self._head_size() > self.limits.max_head_bytes
        ):
            log.info(
                "request head refused: over its limits",
                extra={"action": "http_head_refused", "headers": len(self.headers)},
            )
            app, self.app = self.app, self.head_too_large  # the request is answered 431
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # waiting for the next request's head
            self._arm_head_timer()

    def _head_size(self) -> int:
        size = REQUEST_LINE_FRAMING + len(self.url)
        for name, value in self.headers:
            size += len(name) + len(value) + HEADER_FRAMING
        return size

    def _refuse_open_head(self) -> None:
        log.info(
            "request head refused: over its size limit before it ended",
            extra={"action": "http_head_refused", "bytes": self.head_bytes},
        )
        self._close_with(self.head_too_large_bytes)

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self.head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        log.debug(
            "connection closed: no complete request head in time",
            extra={"action": "http_head_timeout", "head_begun": self.head_open},
        )
        self._close_with(self.timed_out_bytes if self.head_open else b"")

    def _close_with(self, answer: bytes) -> None:
        self.head_open = False
        self._disarm_head_timer()
        if answer:
            self.transport.write(answer)
        self.transport.close()


def _raw(response: ProblemResponse) -> bytes:
    """A whole HTTP/1.1 response, for writing straight to a connection."""
    head = [STATUS_LINE[response.status_code]]
    head += [name + b": " + value + b"\r\n" for name, value in response.raw_headers]
    return b"".join([*head, b"\r\n", response.body])
