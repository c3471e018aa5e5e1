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

from api.config_cli import add_config_commands
from api.features import Feature, include
from api.routes import config
from projections.config_view import CONFIG_MIGRATIONS, ConfigView
from projections.runner import View

if TYPE_CHECKING:
    from api.settings import Settings


def views(settings: Settings) -> Sequence[View]:
    return [ConfigView()]


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    add_config_commands(sub)


FEATURE = Feature(
    "config", migrations=CONFIG_MIGRATIONS, views=views, routes=include(config.router), cli=cli
)
