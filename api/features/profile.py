"""The profiler: the bottleneck report (``GET /v1/profile``, ``apiary profile``; the
dashboard's Profile page is the dashboard's). Its stages are kept by the stages view (the
tasks feature's), so it adds no view of its own."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from api.features import Feature

if TYPE_CHECKING:
    from fastapi import FastAPI


def routes(app: FastAPI) -> None:
    from api.routes import profile

    app.include_router(profile.router)


def cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from api.profile_cli import add_profile_command

    add_profile_command(sub)


FEATURE = Feature("profile", routes=routes, cli=cli)
