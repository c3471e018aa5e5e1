"""``apiary message ...``: send and read messages through the HTTP API.

``send`` uses any key that may send (a client's, an admin's or a bot's own); ``read``
claims a bot's messages with that bot's own key and, with ``--ack``, acknowledges them;
its request waits a little longer than ``--wait`` (up to the API's 30 s), so the hive, not
the CLI, ends the wait. ``list`` shows a conversation in send order, or the latest
messages of all.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from api.http_cli import TIMEOUT_S, Columns, add_paging, api_commands, call_api, emit, query
from api.settings import Settings

MAX_READ_WAIT_S = 30.0  # the API's longest claim
COLUMNS: Columns = (
    ("ID", "id"),
    ("SENDER", "sender"),
    ("STATE", "state"),
    ("BOT", "bot_id"),
    ("CONVERSATION", "conversation"),
    ("SEQ", "seq"),
    ("SENT", "sent_at"),
    ("BODY", "body"),
)
READ_COLUMNS: Columns = (
    ("ID", "id"),
    ("SENDER", "sender"),
    ("CONVERSATION", "conversation"),
    ("SEQ", "seq"),
    ("ATTEMPT", "attempt"),
    ("BODY", "body"),
)


def add_message_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    run: Callable[[argparse.Namespace, Settings], int],
) -> None:
    command = api_commands(sub, "message", "Messages between bots (over the HTTP API).", run)

    send = command("send", "Send a message to a bot, a capability or every bot of a pool.")
    to = send.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-bot", metavar="ID", help="to this bot")
    to.add_argument("--to-capability", metavar="C", help="to one live bot that has it")
    to.add_argument("--to-pool", metavar="P", help="to every live bot of this pool")
    send.add_argument("--body", required=True, help="the message: JSON")
    send.add_argument("--conversation", help="a short name or UUID: order is kept within it")
    send.add_argument("--task-id", help="the task it is about")
    send.add_argument("--ttl", type=int, metavar="S", help="seconds before it is dead-lettered")
    read = command("read", "Claim a bot's messages (with the bot's own key).")
    read.add_argument("--bot", required=True, metavar="ID", help="the bot whose messages")
    read.add_argument("--max", type=int, default=10, help="at most this many (default 10)")
    read.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help=f"wait up to S seconds for one (0..{MAX_READ_WAIT_S:g}, default 0)",
    )
    read.add_argument("--ack", action="store_true", help="acknowledge what was read")
    show = command("show", "Show one message with its history.")
    show.add_argument("message_id", metavar="ID", help="the message's id")
    listing = command("list", "List a conversation's messages in send order, or the latest of all.")
    listing.add_argument("--conversation", help="its messages (default: the latest of all)")
    add_paging(listing)


def cmd_message(args: argparse.Namespace, settings: Settings) -> int:
    prog = "apiary message"
    match args.message:
        case "send":
            try:
                body = _send_body(args)
            except ValueError as e:
                print(f"{prog}: {e}", file=sys.stderr)
                return 2
            return call_api(args, settings, prog, "POST", "/v1/messages", body)[0]
        case "read":
            return _read(args, settings, prog)
        case "show":
            return call_api(args, settings, prog, "GET", f"/v1/messages/{args.message_id}", None)[0]
        case _:
            found = query(conversation=args.conversation, limit=args.limit, cursor=args.cursor)
            return call_api(
                args, settings, prog, "GET", "/v1/messages", None, params=found, columns=COLUMNS
            )[0]


def _read(args: argparse.Namespace, settings: Settings, prog: str) -> int:
    if not 0 <= args.wait <= MAX_READ_WAIT_S:
        print(f"{prog}: --wait must be 0..{MAX_READ_WAIT_S:g} seconds", file=sys.stderr)
        return 2
    claim = {"max_messages": args.max, "wait_s": args.wait}
    path = f"/v1/bots/{args.bot}/messages"
    code, answer = call_api(
        args,
        settings,
        prog,
        "POST",
        f"{path}/claim",
        claim,
        show=False,
        timeout_s=TIMEOUT_S + args.wait,
    )
    if code:
        return code
    emit(args, answer if args.json else {"items": answer["messages"]}, READ_COLUMNS)
    if not args.ack or not answer["messages"]:
        return 0
    acks = [{"message_id": m["id"], "attempt": m["attempt"]} for m in answer["messages"]]
    ack = {"messages": acks}
    return call_api(args, settings, prog, "POST", f"{path}/ack", ack, show=False)[0]


def _send_body(args: argparse.Namespace) -> dict[str, Any]:
    try:
        payload = json.loads(args.body)
    except json.JSONDecodeError as e:
        raise ValueError(f"--body is not JSON: {e}") from None
    body: dict[str, Any] = {"body": payload}
    optional = {
        "to_bot": args.to_bot,
        "to_capability": args.to_capability,
        "to_pool": args.to_pool,
        "conversation": args.conversation,
        "task_id": args.task_id,
        "ttl_s": args.ttl,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body
