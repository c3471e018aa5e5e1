"""``apiary schedule ...``: schedules through the HTTP API, as any client would make them.

Over HTTP with an API key rather than straight to the database, so a schedule made here
meets the same checks and is stamped with the same actor (the key's principal) as one
made with curl. A list is a table, one schedule its fields (``--json``: the API's JSON); a
refusal prints its problem on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from api.http_cli import Columns, add_paging, api_commands, call_api, query
from api.settings import Settings

COLUMNS: Columns = (
    ("ID", "id"),
    ("NAME", "name"),
    ("STATE", "state"),
    ("CRON", "cron"),
    ("ZONE", "timezone"),
    ("EVERY_S", "every_s"),
    ("TYPE", "template.type"),
    ("NEXT", "next_tick"),
    ("FIRED", "fired"),
)


def add_schedule_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    run: Callable[[argparse.Namespace, Settings], int],
) -> None:
    command = api_commands(sub, "schedule", "Schedules (over the HTTP API).", run)

    create = command("create", "Create a schedule: a cron expression or --every N seconds.")
    create.add_argument("--name", required=True, help="a short name for people")
    trigger = create.add_mutually_exclusive_group(required=True)
    trigger.add_argument("--cron", help='5 fields, e.g. "30 2 * * MON-FRI", or @daily etc.')
    trigger.add_argument("--every", type=int, metavar="SECONDS", help="a fixed interval")
    create.add_argument("--timezone", help="IANA zone of the cron expression (default UTC)")
    create.add_argument("--start-at", help="RFC 3339 with an offset (default: now)")
    create.add_argument("--type", required=True, help="the task type each tick submits")
    create.add_argument(
        "--priority", type=int, default=5, help="each task's: 0..9, 9 the most urgent (default 5)"
    )
    create.add_argument("--capabilities", help="comma-separated (default: the type)")
    create.add_argument("--payload", default="{}", help="JSON (default {})")
    create.add_argument(
        "--overlap",
        choices=("skip", "buffer_one", "allow_all"),
        help="a tick due while the previous task is unfinished: skip it (default), keep one "
        "to run when that task ends, or fire anyway",
    )
    create.add_argument(
        "--catchup",
        choices=("skip", "run_once", "run_all"),
        help="ticks missed while no engine looked: drop them, run the latest once "
        "(default), or run the latest --catchup-limit of them",
    )
    create.add_argument(
        "--catchup-limit", type=int, help="how many missed ticks run_all runs (1..1000, default 10)"
    )
    listing = command("list", "List schedules.")
    listing.add_argument(
        "--state", choices=("active", "paused", "deleted"), help="only schedules in this state"
    )
    add_paging(listing)
    for name, help in (
        ("show", "Show one schedule."),
        ("pause", "Pause a schedule: no tick fires until it is resumed."),
        ("resume", "Resume a paused schedule (ticks missed while paused do not run)."),
        ("delete", "Delete a schedule for good."),
    ):
        command(name, help).add_argument("schedule_id", metavar="ID", help="the schedule's id")


def cmd_schedule(args: argparse.Namespace, settings: Settings) -> int:
    try:
        method, path, body = _request(args)
    except ValueError as e:
        print(f"apiary schedule: {e}", file=sys.stderr)
        return 2
    if args.schedule == "list":
        found = query(state=args.state, limit=args.limit, cursor=args.cursor)
        return call_api(
            args, settings, "apiary schedule", method, path, body, params=found, columns=COLUMNS
        )[0]
    return call_api(args, settings, "apiary schedule", method, path, body)[0]


def _request(args: argparse.Namespace) -> tuple[str, str, Any]:
    match args.schedule:
        case "create":
            return "POST", "/v1/schedules", _create_body(args)
        case "list":
            return "GET", "/v1/schedules", None
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
