"""``apiary bot ...``: run a bot worker, or see and steer the fleet through the HTTP API.

``apiary bot run --capabilities ...`` runs a bot; ``apiary bot --capabilities ...`` (no
sub-command) still does, as it always did, so the launcher's and every script's bots keep
starting. ``list``, ``show``, ``drain``, ``quarantine`` and ``reinstate`` are operator
commands like ``apiary task ...`` (``--url``, ``--key``, ``--json``).
"""

from __future__ import annotations

import argparse
from typing import Any

from api.http_cli import Columns, add_paging, api_command_maker, call_api, query
from api.settings import Settings

PROG = "apiary bot"
LIST_STATES = ("live", "all", "ready", "draining", "quarantined", "probing", "lost", "deregistered")
COLUMNS: Columns = (
    ("ID", "id"),
    ("NAME", "name"),
    ("STATE", "state"),
    ("POOL", "pool"),
    ("CAPABILITIES", "capabilities"),
    ("HELD", "held"),
    ("SLOTS", "max_concurrency"),
    ("VERSION", "version"),
    ("REGISTERED", "registered_at"),
)
USAGE = """\
  apiary bot [run] --capabilities A,B [--url URL] [--key KEY] ...   run a bot worker
  apiary bot list|show|drain|quarantine|reinstate ...               the fleet (HTTP API)"""


def add_bot_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from runtime.bot.cli import add_bot_arguments

    about = "Run a bot worker (`bot run`, or `bot` with its options), or see and steer the fleet."
    group = sub.add_parser(
        "bot",
        help=about,
        description=f"{about}\n\n{USAGE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group.set_defaults(run=run_bot)
    add_bot_arguments(group, required=False)  # `apiary bot --capabilities ...`, as before
    commands = group.add_subparsers(dest="bot", metavar="COMMAND")
    run = commands.add_parser("run", help="Run a bot worker that does tasks for a hive.")
    run.set_defaults(run=run_bot)
    add_bot_arguments(run)

    command = api_command_maker(commands, operate)
    listing = command("list", "List bots: the live ones by default, in registration order.")
    listing.add_argument(
        "--state",
        choices=LIST_STATES,
        default="live",
        help="live (default: ready, draining or quarantined, and heartbeating), all, or one",
    )
    listing.add_argument("--capability", metavar="C", help="only bots that have it")
    listing.add_argument("--pool", metavar="P", help="only the bots of this pool")
    listing.add_argument("--name", dest="bot_name", metavar="NAME", help="only bots named so")
    add_paging(listing)
    for name, help in (
        ("show", "Show one bot, whatever its state."),
        ("drain", "Drain a bot: no new work; it finishes what it holds (admin key)."),
        ("quarantine", "Quarantine a bot: no new work until reinstated (admin key)."),
        ("reinstate", "Reinstate a quarantined bot (admin key)."),
    ):
        cmd = command(name, help)
        cmd.add_argument("bot_id", metavar="ID", help="the bot's id")
        if name in ("drain", "quarantine"):
            cmd.add_argument("--reason", help="why (kept in the log; default: no reason given)")


def run_bot(args: argparse.Namespace, settings: Settings) -> int:
    from runtime.bot.cli import run_bot

    return run_bot(args)


def operate(args: argparse.Namespace, settings: Settings) -> int:
    def call(method: str, path: str, body: Any = None, **kw: Any) -> int:
        return call_api(args, settings, PROG, method, path, body, **kw)[0]

    match args.bot:
        case "list":
            found = query(
                state=args.state,
                capability=args.capability,
                pool=args.pool,
                name=args.bot_name,
                limit=args.limit,
                cursor=args.cursor,
            )
            return call("GET", "/v1/bots", params=found, columns=COLUMNS)
        case "show":
            return call("GET", f"/v1/bots/{args.bot_id}")
        case "reinstate":
            return call("POST", f"/v1/bots/{args.bot_id}/reinstate")
        case action:  # drain, quarantine
            reason = None if args.reason is None else {"reason": args.reason}
            return call("POST", f"/v1/bots/{args.bot_id}/{action}", reason)
