"""The dashboard's own ports in a container: absent only by a composition mistake."""

from __future__ import annotations

from typing import TypeVar

from api.container import Container
from api.ports import DashboardReads, History

T = TypeVar("T")


def wired(port: T | None) -> T:
    if port is None:  # a composition mistake, not a request's fault
        raise RuntimeError("the dashboard's reads are not wired into this container")
    return port


def dashboard_reads(ctx: Container) -> DashboardReads:
    return wired(ctx.dashboard)


def history(ctx: Container) -> History:
    return wired(ctx.history)
