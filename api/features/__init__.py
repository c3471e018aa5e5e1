"""Features: each area of the hive, as it plugs into a process, through one small interface.

A feature contributes what it adds to the hive: its migrations, its views (kept by
engines), its live models, the loops it runs in an engine (each led by one engine at a
time), its routes and its CLI commands. ``api.features.catalog.FEATURES`` lists them; the
composition root (``api/bootstrap.py``) assembles them for the role a process plays, the
app (``api/app.py``) takes their routes and the CLI (``api/cli.py``) their commands. Adding
a capability means a new module here and one line in the catalog.

Each contribution is a function, and a feature module imports what it contributes inside
those functions: every ``apiary`` command (a launched ``apiary bot`` too) builds the CLI
from the catalog, and must not pay for importing the web framework, the views and the
engine to do so (measured: 1.65 s against 0.38 s to start `apiary bot --help`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from api.bootstrap import Node
    from api.settings import Settings
    from projections.runner import View
    from runtime.loops import Loop
    from runtime.models import LiveModel
    from store.migrations import Migration


def _none(*_: object) -> list[Any]:
    return []


@dataclass(frozen=True)
class Feature:
    name: str
    migrations: Callable[[], Sequence[Migration]] = field(default=_none)
    views: Callable[[Settings], Sequence[View]] = field(default=_none)
    models: Callable[[Node], Sequence[LiveModel]] = field(default=_none)
    loops: Callable[[Node], Sequence[Loop]] = field(default=_none)
    routes: Callable[[FastAPI], object] = field(default=_none)
    cli: Callable[[argparse._SubParsersAction], None] | None = None  # type: ignore[type-arg]
