"""The port through which ``HiveClient`` reaches the hive: one request in, one answer out.

``HiveClient`` speaks the contract (paths, bodies, problems, retries); a ``Transport`` only
carries bytes to the hive and back. ``http_transport.HTTPTransport`` is the one the bot
uses; unit tests put a fake hive behind the port instead.

A transport raises ``TransportError`` when the hive could not be reached or its answer
did not arrive whole: the request may or may not have been applied, so the client sends
it again (with the same ``X-Request-ID``) until its deadline. Anything else a transport
raises is a bug or a misuse, and reaches the caller as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class TransportError(Exception):
    """The hive could not be reached, or its answer was cut short or garbled."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait: for a connection, for each write and read on it, for a free one."""

    connect: float
    read: float
    write: float
    pool: float


class Headers(Mapping[str, str]):
    """Header fields looked up by name in any case; a repeated field's values are joined
    with ", " (RFC 9110, 5.3), so a lookup sees them all."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        joined: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        self._fields = joined

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


@dataclass(frozen=True)
class Response:
    """The hive's answer, read whole."""

    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""


class Transport(Protocol):
    def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Timeouts,
    ) -> Response:
        """Sends one request to ``path`` under the hive's base URL; returns its answer,
        whatever its status. Safe to call from several threads at once. Raises
        ``TransportError`` as the module says; after ``close()`` it raises that too."""
        ...

    def close(self) -> None:
        """Lets go of every connection, from any thread; requests on the wire fail."""
        ...
