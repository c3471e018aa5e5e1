"""Messages: the messages view and its counts, the postman loop, routes, `apiary message`."""

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
    from runtime.loops import Loop
    from store.migrations import Migration


def migrations() -> Sequence[Migration]:
    from projections.messages_view import MESSAGE_MIGRATIONS

    return MESSAGE_MIGRATIONS


def views(settings: Settings) -> Sequence[View]:
    from projections.messages_view import MessagesView

    return [MessagesView()]


def loops(node: Node) -> Sequence[Loop]:
    from runtime.loops import Loop

    postman = node.postman
    node.mailbox.listeners.append(lambda _: postman.wake.set())
    # Not on every task event: only a bot coming or going changes who may get mail.
    node.index.listeners.append(lambda c: postman.wake.set() if c.fleet else None)
    return [
        Loop(
            "postman",
            postman.run_once,
            node.settings.poll_interval_s,
            postman.wake,
            postman.wait_hint,
        )
    ]


def routes(app: FastAPI) -> None:
    from api.routes import messages

    app.include_router(messages.router)


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.message_cli import add_message_commands, cmd_message

    add_message_commands(sub, cmd_message)


FEATURE = Feature(
    "messages", migrations=migrations, views=views, loops=loops, routes=routes, cli=cli
)
