"""``apiary schedule ...``: schedules through the HTTP API, as any client would make them.

Over HTTP with an API key rather than straight to the database, so a schedule made here
meets the same checks and is stamped with the same actor (the key's principal) as one
made with curl. Prints the API's JSON; a refusal prints its problem on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from api.http_cli import api_commands, call_api
from api.settings import Settings


def add_schedule_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    run: Callable[[argparse.Namespace, Settings], int],
) -> None:
    command = api_commands(sub, "schedule", "Schedules (over the HTTP API).", run)

    create = command("create", "Create a schedule: a cron expression or --every N seconds.")
    create.add_argument("--name", required=True)
    trigger = create.add_mutually_exclusive_group(required=True)
    trigger.add_argument("--cron", help='5 fields, e.g. "30 2 * * MON-FRI", or @daily etc.')
    trigger.add_argument("--every", type=int, metavar="SECONDS", help="a fixed interval")
    create.add_argument("--timezone", help="IANA zone of the cron expression (default UTC)")
    create.add_argument("--start-at", help="RFC 3339 with an offset (default: now)")
    create.add_argument("--type", required=True, help="the task type each tick submits")
    create.add_argument("--priority", type=int, default=5)
    create.add_argument("--capabilities", help="comma-separated (default: the type)")
    create.add_argument("--payload", default="{}", help="JSON (default {})")
    create.add_argument("--overlap", choices=("skip", "buffer_one", "allow_all"))
    create.add_argument("--catchup", choices=("skip", "run_once", "run_all"))
    create.add_argument("--catchup-limit", type=int)
    listing = command("list", "List schedules.")
    listing.add_argument("--state", choices=("active", "paused", "deleted"))
    listing.add_argument("--limit", type=int, default=100)
    for name, help in (
        ("show", "Show one schedule."),
        ("pause", "Pause a schedule: no tick fires until it is resumed."),
        ("resume", "Resume a paused schedule (ticks missed while paused do not run)."),
        ("delete", "Delete a schedule for good."),
    ):
        command(name, help).add_argument("schedule_id")


def cmd_schedule(args: argparse.Namespace, settings: Settings) -> int:
    try:
        method, path, body = _request(args)
    except ValueError as e:
        print(f"apiary schedule: {e}", file=sys.stderr)
        return 2
    return call_api(args, settings, "apiary schedule", method, path, body)[0]


def _request(args: argparse.Namespace) -> tuple[str, str, Any]:
    match args.schedule:
        case "create":
            return "POST", "/v1/schedules", _create_body(args)
        case "list":
            query = f"?limit={args.limit}" + (f"&state={args.state}" if args.state else "")
            return "GET", f"/v1/schedules{query}", None
        case "show":
            return "GET", f"/v1/schedules/{args.schedule_id}", None
        case "delete":
            return "DELETE", f"/v1/schedules/{args.schedule_id}", None
        case action:
            return "POST", f"/v1/schedules/{args.schedule_id}/{action}", None


def _create_body(args: argparse.Namespace) -> dict[str, Any]:
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as e:
        raise ValueError(f"--payload is not JSON: {e}") from None
    template: dict[str, Any] = {"type": args.type, "priority": args.priority, "payload": payload}
    if args.capabilities:
        template["capabilities"] = [c.strip() for c in args.capabilities.split(",") if c.strip()]
    body: dict[str, Any] = {"name": args.name, "template": template}
    optional = {
        "cron": args.cron,
        "every_s": args.every,
        "timezone": args.timezone,
        "start_at": args.start_at,
        "overlap": args.overlap,
        "catchup": args.catchup,
        "catchup_limit": args.catchup_limit,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body
