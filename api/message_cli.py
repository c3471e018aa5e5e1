"""``apiary message ...``: send and read messages through the HTTP API.

``send`` uses any key that may send (a client's, an admin's or a bot's own); ``read``
claims a bot's messages with that bot's own key and, with ``--ack``, acknowledges them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from api.http_cli import TIMEOUT_S, api_commands, call_api
from api.settings import Settings

MAX_READ_WAIT_S = TIMEOUT_S - 5


def add_message_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    run: Callable[[argparse.Namespace, Settings], int],
) -> None:
    command = api_commands(sub, "message", "Messages between bots (over the HTTP API).", run)

    send = command("send", "Send a message to a bot, a capability or every bot of a pool.")
    to = send.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-bot", metavar="ID")
    to.add_argument("--to-capability", metavar="C")
    to.add_argument("--to-pool", metavar="P")
    send.add_argument("--body", required=True, help="JSON")
    send.add_argument("--conversation", help="a short name or UUID: order is kept within it")
    send.add_argument("--task-id", help="the task it is about")
    send.add_argument("--ttl", type=int, metavar="S", help="seconds before it is dead-lettered")
    read = command("read", "Claim a bot's messages (with the bot's own key).")
    read.add_argument("--bot", required=True, metavar="ID")
    read.add_argument("--max", type=int, default=10)
    read.add_argument("--wait", type=float, default=0.0, help=f"seconds, <= {MAX_READ_WAIT_S}")
    read.add_argument("--ack", action="store_true", help="acknowledge what was read")
    command("show", "Show one message with its history.").add_argument("message_id")
    listing = command("list", "List a conversation's messages in send order.")
    listing.add_argument("--conversation", required=True)
    listing.add_argument("--limit", type=int, default=100)


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
            claim = {"max_messages": args.max, "wait_s": min(args.wait, MAX_READ_WAIT_S)}
            path = f"/v1/bots/{args.bot}/messages"
            code, answer = call_api(args, settings, prog, "POST", f"{path}/claim", claim)
            if code or not args.ack or not answer or not answer.get("messages"):
                return code
            acks = [{"message_id": m["id"], "attempt": m["attempt"]} for m in answer["messages"]]
            return call_api(args, settings, prog, "POST", f"{path}/ack", {"messages": acks})[0]
        case "show":
            return call_api(args, settings, prog, "GET", f"/v1/messages/{args.message_id}", None)[0]
        case _:
            query = f"?conversation={args.conversation}&limit={args.limit}"
            return call_api(args, settings, prog, "GET", f"/v1/messages{query}", None)[0]


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
