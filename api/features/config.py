"""The config manager: the runtime configuration's view, routes and `apiary config`.

The worked example of a feature (see docs/architecture.md, "Adding a capability"): the
aggregate and its commands are in ``domain/config.py`` and ``domain/hive/config.py``; the
document's schema in ``runtime/config.py``; every process's copy in
``runtime/live_config.py``; and this module plugs the rest in.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature

if TYPE_CHECKING:
    from fastapi import FastAPI

    from api.settings import Settings
    from projections.runner import View
    from store.migrations import Migration


def migrations() -> Sequence[Migration]:
    from projections.config_view import CONFIG_MIGRATIONS

    return CONFIG_MIGRATIONS


def views(settings: Settings) -> Sequence[View]:
    from projections.config_view import ConfigView

    return [ConfigView()]


def routes(app: FastAPI) -> None:
    from api.routes import config

    app.include_router(config.router)


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.config_cli import add_config_commands

    add_config_commands(sub)


FEATURE = Feature("config", migrations=migrations, views=views, routes=routes, cli=cli)
