"""Features: each area of the hive, as it plugs into a process, through one small interface.

A feature contributes what it adds to the hive: its migrations, its views (kept by
engines), the loops it runs in an engine (each led by one engine at a time), its routes
and its CLI commands. ``FEATURES`` lists them; the composition root (``api/bootstrap.py``)
assembles them for the role a process plays. Adding a capability means a new module here
and one line in ``api.features.catalog.FEATURES``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI

from projections.runner import View
from runtime.loops import Loop
from runtime.models import LiveModel
from store.migrations import Migration

if TYPE_CHECKING:
    from api.bootstrap import Node
    from api.settings import Settings


def _none(*_: object) -> list[object]:
    return []


def include(*routers: APIRouter) -> Callable[[FastAPI], None]:
    """Routes as a feature contributes them: these routers, in this order."""

    def install(app: FastAPI) -> None:
        for router in routers:
            app.include_router(router)

    return install


@dataclass(frozen=True)
class Feature:
    name: str
    migrations: Sequence[Migration] = ()
    views: Callable[[Settings], Sequence[View]] = field(default=_none)  # type: ignore[assignment]
    models: Callable[[Node], Sequence[LiveModel]] = field(default=_none)  # type: ignore[assignment]
    loops: Callable[[Node], Sequence[Loop]] = field(default=_none)  # type: ignore[assignment]
    routes: Callable[[FastAPI], None] = field(default=_none)  # type: ignore[assignment]
    cli: Callable[[argparse._SubParsersAction], None] | None = None  # type: ignore[type-arg]
