"""What the CLI's API commands share: one authenticated request, and their options.

``apiary schedule``, ``apiary message`` and ``apiary config`` talk to a running hive over
HTTP, so they get the API's validation and are recorded under the key's principal like any client.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import httpx

from api.settings import Settings

TIMEOUT_S = 15.0


def api_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    help: str,
    run: Callable[[argparse.Namespace, Settings], int],
) -> Callable[[str, str], argparse.ArgumentParser]:
    """A command group (``apiary <name> ...``); returns a maker of its sub-commands, each
    with ``--url`` and ``--key``."""
    group = sub.add_parser(name, help=help)
    commands = group.add_subparsers(dest=name, required=True)

    def command(cmd_name: str, cmd_help: str) -> argparse.ArgumentParser:
        cmd = commands.add_parser(cmd_name, help=cmd_help, description=cmd_help)
        cmd.set_defaults(run=run)
        cmd.add_argument("--url", help="the hive's API (default APIARY_URL or APIARY_HOST:PORT)")
        cmd.add_argument(
            "--key", help="an API key (default APIARY_KEY, else the admin key of `apiary serve`)"
        )
        return cmd

    return command


def call_api(
    args: argparse.Namespace,
    settings: Settings,
    prog: str,
    method: str,
    path: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    show: bool = True,
) -> tuple[int, Any]:
    """One request with the key of ``--key``/APIARY_KEY (or the local admin key); prints the
    JSON answer (unless ``show`` is False; a problem always, on stderr). Returns the exit
    code and the answer."""
    key = args.key or os.environ.get("APIARY_KEY") or _admin_key(settings)
    if not key:
        print(f"{prog}: no API key (--key, APIARY_KEY)", file=sys.stderr)
        return 2, None
    url = args.url or os.environ.get("APIARY_URL") or f"http://{settings.host}:{settings.port}"
    logging.getLogger("httpx").setLevel(logging.WARNING)  # stderr carries only the problem
    try:
        with httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:
            response = client.request(
                method,
                path,
                json=body,
                headers={"Authorization": f"Bearer {key}", **(headers or {})},
            )
    except httpx.HTTPError as e:
        print(f"{prog}: cannot reach {url}: {e}", file=sys.stderr)
        return 1, None
    out = sys.stdout if response.is_success else sys.stderr
    try:
        answer = response.json()
        if show or not response.is_success:
            print(json.dumps(answer, indent=2), file=out)
    except ValueError:  # not the hive answering (a proxy?): show what came
        print(f"HTTP {response.status_code}: {response.text[:2000]}", file=out)
        answer = None
    return (0 if response.is_success else 1), answer


def _admin_key(settings: Settings) -> str | None:
    """The key `apiary serve` keeps for its operator, when this machine runs the hive."""
    path = settings.home / "admin.key"
    return path.read_text().strip() if path.is_file() else None
