"""``apiary keys list | show | create | revoke | rotate``: API keys, for people (a table)
and for scripts (``--json``); the exit status is not 0 when the command failed.

Two ways to reach the keys, chosen per command:
- over the HTTP API, when ``--url`` or ``--key`` is given (or APIARY_URL / APIARY_KEY is
  set): an admin key of a running hive, recorded as that key's principal;
- otherwise against the database itself (APIARY_DATABASE_URL, or the embedded database
  under APIARY_HOME): how the first admin key is issued, before anyone holds one.

``create`` and ``rotate`` print the new token alone on stdout (what a script captures);
the rest of what they say goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from api.http_cli import call_api, emit
from api.settings import Settings

PROG = "apiary keys"
ROLES = ("admin", "client", "bot")
DURATION = re.compile(r"^(\d{1,9})([smhd])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_PAGE = 500
WAYS = (
    "Over HTTP when --url or --key is given (or APIARY_URL / APIARY_KEY is set): an admin "
    "key of a running hive. Otherwise against the database itself: APIARY_DATABASE_URL, or "
    "the embedded one under APIARY_HOME (default .apiary); this is how the first admin key "
    "is issued."
)
COLUMNS = (
    ("ID", "id"),
    ("NAME", "name"),
    ("ROLE", "role"),
    ("STATE", "state"),
    ("BOT", "bot_id"),
    ("CREATED BY", "created_by"),
    ("CREATED", "created_at"),
    ("EXPIRES", "expires_at"),
    ("LAST USED", "last_used_at"),
)


def add_keys_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("keys", help="API keys.", description=f"API keys. {WAYS}")
    commands = group.add_subparsers(dest="keys", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        cmd = commands.add_parser(name, help=help, description=f"{help} {WAYS}")
        cmd.set_defaults(run=run)
        cmd.add_argument("--url", help="the hive's API (default APIARY_URL): use HTTP")
        cmd.add_argument("--key", help="an admin API key (default APIARY_KEY): use HTTP")
        cmd.add_argument("--json", action="store_true", help="print JSON (for scripts)")
        return cmd

    listing = command("list", "List keys (those that still work, unless --all).")
    listing.add_argument("--role", choices=ROLES, help="only keys of this role")
    listing.add_argument("--name", help="only keys of this name")
    listing.add_argument("--all", action="store_true", help="revoked and expired keys too")
    listing.add_argument("--limit", type=page_size, default=100, help="at most this many (1..500)")
    listing.add_argument("--cursor", help="the next page, as the last one said")
    command("show", "Show one key.").add_argument("key_id", type=UUID, help="the key's id")
    create = command("create", "Issue a key; its token is printed once, alone on stdout.")
    create.add_argument(
        "--role",
        choices=ROLES,
        required=True,
        help="admin: everything; client: tasks, schedules, messages; bot: enrol bots",
    )
    create.add_argument("--name", help="what the key is for (default: the role)")
    create.add_argument("--principal", help="who its events are stamped with (default: name)")
    create.add_argument(
        "--expires",
        type=expiry,
        metavar="WHEN",
        help="refused from then on: a duration (90m, 12h, 30d) or an RFC 3339 time",
    )
    command("revoke", "Revoke a key: refused at once by every API process.").add_argument(
        "key_id", type=UUID, help="the key's id"
    )
    command(
        "rotate",
        "Replace a key: a new one with its name, role and expiry (its token printed once); "
        "the old one is revoked at once, with no grace period.",
    ).add_argument("key_id", type=UUID, help="the key's id")


def page_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"a whole number, 1..{MAX_PAGE}")
    return int(text)


def expiry(text: str) -> datetime | int:
    """A duration in seconds (``30d``), or an instant with its offset."""
    found = DURATION.match(text)
    if found:
        return int(found.group(1)) * UNIT_S[found.group(2)]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "a duration (90m, 12h, 30d) or an RFC 3339 time with an offset"
        ) from None
    if when.utcoffset() is None:
        raise argparse.ArgumentTypeError("a time needs an offset (say Z or +02:00)")
    return when


def run(args: argparse.Namespace, settings: Settings) -> int:
    over_http = bool(
        args.url or args.key or os.environ.get("APIARY_URL") or os.environ.get("APIARY_KEY")
    )
    code, answer = _over_http(args, settings) if over_http else _in_database(args, settings)
    if code == 0:
        show(args, answer)
    return code


def _over_http(args: argparse.Namespace, settings: Settings) -> tuple[int, Any]:
    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return call_api(args, settings, PROG, method, path, body, show=False)

    match args.keys:
        case "list":
            query: dict[str, Any] = {"limit": args.limit}
            query.update({k: v for k, v in (("role", args.role), ("name", args.name)) if v})
            if args.cursor:
                query["cursor"] = args.cursor
            if args.all:
                query.update(include_revoked="true", include_expired="true")
            return call("GET", f"/v1/keys?{urlencode(query)}")
        case "show":
            return call("GET", f"/v1/keys/{args.key_id}")
        case "create":
            body: dict[str, Any] = {"role": args.role, "name": args.name or args.role}
            if args.principal:
                body["principal"] = args.principal
            if isinstance(args.expires, int):
                body["expires_in_s"] = args.expires
            elif args.expires is not None:
                body["expires_at"] = args.expires.isoformat()
            return call("POST", "/v1/keys", body)
        case _:  # revoke, rotate
            return call("POST", f"/v1/keys/{args.key_id}/{args.keys}")


def _in_database(args: argparse.Namespace, settings: Settings) -> tuple[int, Any]:
    from api.cli import database
    from api.keys_local import LocalKeys
    from domain.errors import HiveError
    from domain.keys import Role
    from projections.key_reads import KeyFilter

    try:
        with database(settings) as url:
            keys = LocalKeys(url, settings)
            match args.keys:
                case "list":
                    flt = KeyFilter(
                        role=args.role,
                        name=args.name,
                        include_revoked=args.all,
                        include_expired=args.all,
                    )
                    return 0, keys.list(flt, args.limit, args.cursor)
                case "show":
                    return 0, keys.show(args.key_id)
                case "create":
                    name = args.name or args.role
                    return 0, keys.create(Role(args.role), name, args.principal, args.expires)
                case "revoke":
                    return 0, keys.revoke(args.key_id)
                case _:
                    return 0, keys.rotate(args.key_id)
    except (HiveError, ValueError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1, None


def show(args: argparse.Namespace, answer: Any) -> None:
    """The answer as the other commands show theirs (``api.http_cli.emit``); a new token
    alone on stdout, for a script to keep, and what it is on stderr."""
    if args.json or args.keys not in ("create", "rotate"):
        emit(args, answer, COLUMNS if args.keys == "list" else None)
        if args.keys == "revoke" and not args.json:
            print(f"key {answer['id']} revoked", file=sys.stderr)
        return
    print(answer["token"])
    replaced = f", replacing {answer['replaces']}" if answer.get("replaces") else ""
    print(
        f"key {answer['id']} ({answer['role']}, {answer['name']}{replaced}) - "
        "shown once; only its hash is stored",
        file=sys.stderr,
    )
