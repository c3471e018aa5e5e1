"""``apiary mode ...``: the hive's mode, over the HTTP API (show: any key; set and clear:
an admin key). An operator's mode holds until an operator clears it."""

from __future__ import annotations

import argparse
from typing import Any

from api.http_cli import api_commands, call_api, refusing_bad_usage
from api.settings import Settings

PROG = "apiary mode"
MODES = ("normal", "degraded", "critical", "maintenance")


def add_mode_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = api_commands(sub, "mode", "The hive's mode (over the HTTP API).", run)
    command("show", "The mode this server acts on, and the mode as recorded (who, why).")
    setter = command("set", "An operator's mode: it holds until cleared.")
    setter.add_argument("mode_name", metavar="MODE", choices=MODES, help=", ".join(MODES))
    setter.add_argument("--reason", required=True, help="why (recorded with the mode)")
    clear = command("clear", "End the operator's mode: normal, and the policy's again.")
    clear.add_argument("--reason", required=True, help="why (recorded)")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    def call(method: str, path: str, body: Any = None) -> int:
        return call_api(args, settings, PROG, method, path, body)[0]

    match args.mode:
        case "show":
            return call("GET", "/v1/mode")
        case "set":
            return call("PUT", "/v1/mode", {"mode": args.mode_name, "reason": args.reason})
        case _:  # clear
            return call("POST", "/v1/mode/clear", {"reason": args.reason})


run = refusing_bad_usage(PROG, _run)
