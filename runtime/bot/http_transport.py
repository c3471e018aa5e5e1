"""HTTPTransport: the hive over HTTP/1.1 keep-alive connections, with the standard library.

A bot's claims and reports are small requests, to a hive that is often close by, so the
client's own work is much of what a round trip costs: this is as little of it as the
standard library allows. The request is written here, head and body in one ``sendall`` (3.11's
``http.client.HTTPConnection`` sends them in two writes: one more segment, and one more
wake-up of the server, per request); the answer is read by ``http.client.HTTPResponse``
(status line, headers, Content-Length or chunked, whether the server keeps the
connection). Connections come from a ``KeepAlivePool`` of ``max_connections``, with
TCP_NODELAY; https uses the default SSL context (the system's trust store).

A keep-alive connection that the server closed while it sat idle (uvicorn does after
5 s) shows it only when used: the request cannot be written, or the answer ends before
its first byte. On a reused connection, and only then, the request goes once more on a
new connection; the idle ones are dropped, as they sat idle longer. It carries the same
``X-Request-ID``, as any request the client repeats. Every other failure, including one
on the request repeated, is a ``TransportError`` for the caller to retry or not.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from runtime.bot.keepalive import KeepAlivePool
from runtime.bot.transport import Headers, Response, Timeouts, TransportError

_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")  # no space, no control character
_UNSAFE_FIELD = re.compile(r"[\x00-\x1f\x7f]")  # no line break smuggling a header in


class _Stale(Exception):
    """A reused connection failed before the answer's first byte: the server had closed it."""


class HTTPTransport:
    def __init__(self, base_url: str, *, max_connections: int = 16) -> None:
        """``base_url``: ``http[s]://host[:port][/prefix]``; requests go under the prefix."""
        parts = urlsplit(base_url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or "@" in parts.netloc
            or parts.query
            or parts.fragment
        ):
            raise ValueError(f"the hive's URL must be http[s]://host[:port][/path]: {base_url!r}")
        default_port = 443 if parts.scheme == "https" else 80
        self._address = (parts.hostname, parts.port or default_port)
        self._host_line = f"Host: {parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._pool = KeepAlivePool(self._connect, max_connections)

    def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
    ) -> Response:
        request = self._request(method, path, headers, body)
        try:
            try:
                return self._exchange(method, request, timeouts, stale_means_retry=True)
            except _Stale:
                self._pool.drop_idle()
                return self._exchange(method, request, timeouts, stale_means_retry=False)
        except (OSError, http.client.HTTPException) as e:
            raise TransportError(f"{type(e).__name__}: {e}") from e

    def close(self) -> None:
        self._pool.close()

    def _request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> bytes:
        target = self._prefix + path
        if _UNSAFE_TARGET.search(target) or any(
            _UNSAFE_FIELD.search(field) for item in headers.items() for field in item
        ):
            raise ValueError(f"a control character in the request to {target!r}")
        lines = [f"{method} {target} HTTP/1.1", self._host_line]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        return head if body is None else head + body

    def _exchange(
        self, method: str, request: bytes, timeouts: Timeouts, *, stale_means_retry: bool
    ) -> Response:
        connection, reused = self._pool.take(timeouts.pool, timeouts.connect)
        answer = http.client.HTTPResponse(connection, method=method)
        keep = False
        try:
            try:
                connection.settimeout(timeouts.write)
                connection.sendall(request)
                connection.settimeout(timeouts.read)
                if not answer.fp.peek(1):  # waits for the answer's first byte
                    raise http.client.RemoteDisconnected("the hive closed the connection")
            except ConnectionError as e:  # nothing of the answer arrived
                if reused and stale_means_retry:
                    raise _Stale from e
                raise
            answer.begin()
            body = answer.read()
            keep = not answer.will_close
            return Response(answer.status, Headers(answer.getheaders()), body)
        finally:
            answer.close()
            self._pool.give_back(connection, keep=keep)

    def _connect(self, timeout_s: float) -> socket.socket:
        connection = socket.create_connection(self._address, timeout_s)
        try:
            # A body longer than a segment ends in a short one, which Nagle would hold
            # until the server ACKs the rest (and the server delays its ACKs).
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                return self._tls.wrap_socket(connection, server_hostname=self._address[0])
        except BaseException:
            connection.close()
            raise
        return connection
