"""API keys: the keys view, every API process's watch on keys (revocation at once), the
routes and `apiary keys`. The aggregate and its commands are in ``domain/keys.py`` and
``domain/hive/keys.py``; the key ring that checks each request in ``api/auth.py``; the
last-use soft state in ``store/key_use.py``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from api.features import Feature

if TYPE_CHECKING:
    from fastapi import FastAPI

    from api.bootstrap import Node
    from api.settings import Settings
    from projections.runner import View
    from runtime.models import LiveModel
    from store.migrations import Migration


def migrations() -> Sequence[Migration]:
    from projections.keys_view import KEYS_MIGRATIONS
    from store.key_use import KEY_USE_MIGRATIONS

    return [*KEYS_MIGRATIONS, *KEY_USE_MIGRATIONS]


def views(settings: Settings) -> Sequence[View]:
    from projections.keys_view import KeysView

    return [KeysView()]


def models(node: Node) -> Sequence[LiveModel]:
    """An API process's key ring forgets a key as soon as the log has news of it."""
    if not node.serves_api:
        return []
    from runtime.key_watch import KeyWatch

    watch = KeyWatch()
    watch.listeners.append(node.keys.forget)
    return [watch]


def routes(app: FastAPI) -> None:
    from api.routes import keys

    app.include_router(keys.router)


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.keys_cli import add_keys_commands

    add_keys_commands(sub)


FEATURE = Feature("keys", migrations=migrations, views=views, models=models, routes=routes, cli=cli)
