"""``apiary task ...``: submit, list, show, cancel and retry tasks, list the dead letters and
re-drive them, through the HTTP API.

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
TASK_STATES = ("pending", "assigned", "running", "succeeded", "failed", "cancelled", "dead")
REDRIVABLE = ("failed", "dead", "cancelled")
COLUMNS: Columns = (
    ("ID", "id"),
    ("TYPE", "type"),
    ("PRI", "priority"),
    ("STATE", "state"),
    ("BOT", "bot_id"),
    ("SUBMITTED", "submitted_at"),
    ("BY", "submitted_by"),
)
DEAD_COLUMNS: Columns = (
    ("ID", "id"),
    ("TYPE", "type"),
    ("KIND", "error_kind"),
    ("ATTEMPT", "attempt"),
    ("FINISHED", "finished_at"),
    ("REASON", "dead_reason"),
    ("ERROR", "error"),
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
    retry = command("retry", "Run a failed, dead or cancelled task again (a new series).")
    retry.add_argument("task_id", metavar="ID", help="the task's id")
    retry.add_argument("--reason", help="why (kept in the log; default: no reason given)")
    dead = command("dead", "List the dead letters: tasks whose retries ran out, oldest first.")
    dead.add_argument("--type", help="only tasks of this type")
    dead.add_argument("--kind", help="only failures of this error kind")
    add_paging(dead)
    redrive = command(
        "redrive", "Re-drive the finished tasks a filter finds (dead ones by default; admin)."
    )
    redrive.add_argument(
        "--state",
        action="append",
        choices=REDRIVABLE,
        help="tasks in this state (repeat for more; default dead)",
    )
    redrive.add_argument("--type", help="only tasks of this type")
    redrive.add_argument("--kind", help="only failures of this error kind")
    redrive.add_argument("--since", metavar="TIME", help="finished at or after (RFC 3339)")
    redrive.add_argument("--until", metavar="TIME", help="finished before (RFC 3339)")
    redrive.add_argument(
        "--limit", type=int, help="at most this many, oldest first (default 100)", metavar="N"
    )
    redrive.add_argument("--dry-run", action="store_true", help="count them, change nothing")
    redrive.add_argument("--reason", required=True, help="why (kept in the log, on each task)")


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
        case "dead":
            found = query(
                state="dead",
                type=args.type,
                error_kind=args.kind,
                limit=args.limit,
                cursor=args.cursor,
            )
            return call("GET", "/v1/tasks", params=found, columns=DEAD_COLUMNS)
        case "redrive":
            return call("POST", "/v1/tasks/redrive", _redrive(args))
        case _:  # cancel, retry
            reason = None if args.reason is None else {"reason": args.reason}
            return call("POST", f"/v1/tasks/{args.task_id}/{args.task}", reason)


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


def _redrive(args: argparse.Namespace) -> dict[str, Any]:
    flt = query(
        states=args.state,
        type=args.type,
        error_kind=args.kind,
        finished_since=args.since,
        finished_until=args.until,
    )
    body = {"filter": flt, "dry_run": args.dry_run, "reason": args.reason}
    return body | query(limit=args.limit)


run = refusing_bad_usage(PROG, _run)
