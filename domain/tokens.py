"""The bearer strings the hive hands out: ``<prefix><id hex>_<secret>``.

The id finds the thing (a key, a dashboard session) without a search; the secret proves
the holder, and only its hash is ever stored. Each kind has its own prefix, so a string of
one kind is never taken for another.
"""

from __future__ import annotations

from uuid import UUID


def join(prefix: str, thing_id: UUID, secret: str) -> str:
    return f"{prefix}{thing_id.hex}_{secret}"


def split(prefix: str, token: str) -> tuple[UUID, str] | None:
    """(id, secret), or None for a string that is not a token of this kind."""
    if not token.startswith(prefix):
        return None
    id_hex, sep, secret = token[len(prefix) :].partition("_")
    if not sep or len(id_hex) != 32 or not secret:
        return None
    try:
        return UUID(hex=id_hex), secret
    except ValueError:
        return None
