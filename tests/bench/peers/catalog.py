"""The peers Apiary is measured beside: what each installs (pinned), needs and runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DRIVERS = Path(__file__).resolve().parent / "drivers"


@dataclass(frozen=True)
class Peer:
    name: str
    title: str
    pins: tuple[str, ...]  # exact versions, installed into the peer's own virtualenv
    needs: str  # "postgres" or "redis": what the driver's --url points at
    min_python: tuple[int, int] = (3, 11)

    @property
    def driver(self) -> Path:
        return DRIVERS / f"drive_{self.name}.py"


PEERS = {
    peer.name: peer
    for peer in (
        Peer(
            "pgqueuer",
            "PgQueuer",
            ("pgqueuer==1.6.0", "asyncpg==0.32.0", "psycopg[binary]==3.3.9", "uvloop==0.23.0"),
            needs="postgres",
        ),
        Peer(
            "oban",
            "Oban (Python)",
            ("oban==0.7.0", "psycopg[binary]==3.3.9", "psycopg-pool==3.3.3", "uvloop==0.23.0"),
            needs="postgres",
            min_python=(3, 12),  # oban requires it
        ),
        Peer(
            "celery",
            "Celery + Redis",
            ("celery[redis]==5.7.0", "redis==8.1.0"),
            needs="redis",
        ),
    )
}
