"""Who caused a change and on whose request: stamped on every event."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    """``actor`` is an API key's principal, ``bot:<id>`` or ``engine:<loop>``."""

    actor: str
    request_id: str

    @classmethod
    def engine(cls, loop: str, request_id: str) -> Cause:
        return cls(actor=f"engine:{loop}", request_id=request_id)
