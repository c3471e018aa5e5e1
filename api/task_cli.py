"""``apiary task ...``: submit, list, show and cancel tasks through the HTTP API.

Over HTTP with an API key, as ``curl`` would: a task submitted here meets the same checks
and is recorded under the key's principal. A list is a table (``--json``: the API's page,
with its ``next_cursor``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from api.http_cli import Columns, add_paging, api_commands, call_api, query, refusing_bad_usage
from api.settings import Settings

PROG = "apiary task"
TASK_STATES = ("pending", "assigned", "running", "succeeded", "failed", "cancelled")
COLUMNS: Columns = (
    ("ID", "id"),
    ("TYPE", "type"),
    ("PRI", "priority"),
    ("STATE", "state"),
    ("BOT", "bot_id"),
    ("SUBMITTED", "submitted_at"),
    ("BY", "submitted_by"),
)


def add_task_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = api_commands(sub, "task", "Tasks (over the HTTP API).", run)

    submit = command("submit", "Submit a task; prints it (pending, or already assigned).")
    submit.add_argument("--type", required=True, help="the task's type (a short name)")
    submit.add_argument(
        "--priority", type=int, help="0..9, 9 the most urgent (default 5)", metavar="N"
    )
    submit.add_argument(
        "--capabilities",
        metavar="A,B",
        help="what a bot needs, comma-separated (default: the type)",
    )
    submit.add_argument("--payload", default="{}", help="the task's input: JSON (default {})")
    submit.add_argument(
        "--idempotency-key",
        metavar="K",
        help="a repeat with the same key (and key of yours) returns the original task",
    )
    submit.add_argument(
        "--not-before", metavar="TIME", help="offer it to no bot before this RFC 3339 time"
    )
    listing = command("list", "List tasks, oldest first (filters combine).")
    listing.add_argument("--state", choices=TASK_STATES, help="only tasks in this state")
    listing.add_argument("--type", help="only tasks of this type")
    listing.add_argument("--bot", metavar="ID", help="only tasks held or run by this bot")
    listing.add_argument("--schedule", metavar="ID", help="only tasks this schedule fired")
    add_paging(listing)
    show = command("show", "Show one task: its state, result or error, and why it went to its bot.")
    show.add_argument("task_id", metavar="ID", help="the task's id")
    cancel = command("cancel", "Cancel a task that has not finished.")
    cancel.add_argument("task_id", metavar="ID", help="the task's id")
    cancel.add_argument("--reason", help="why (kept in the log; default: no reason given)")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    def call(method: str, path: str, body: Any = None, **kw: Any) -> int:
        return call_api(args, settings, PROG, method, path, body, **kw)[0]

    match args.task:
        case "submit":
            return call("POST", "/v1/tasks", _submission(args))
        case "list":
            found = query(
                state=args.state,
                type=args.type,
                bot_id=args.bot,
                schedule_id=args.schedule,
                limit=args.limit,
                cursor=args.cursor,
            )
            return call("GET", "/v1/tasks", params=found, columns=COLUMNS)
        case "show":
            return call("GET", f"/v1/tasks/{args.task_id}")
        case _:  # cancel
            reason = None if args.reason is None else {"reason": args.reason}
            return call("POST", f"/v1/tasks/{args.task_id}/cancel", reason)


def _submission(args: argparse.Namespace) -> dict[str, Any]:
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as e:
        raise ValueError(f"--payload is not JSON: {e}") from None
    body: dict[str, Any] = {"type": args.type, "payload": payload}
    if args.capabilities:
        body["capabilities"] = [c.strip() for c in args.capabilities.split(",") if c.strip()]
    optional = {
        "priority": args.priority,
        "idempotency_key": args.idempotency_key,
        "not_before": args.not_before,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


run = refusing_bad_usage(PROG, _run)
