"""``apiary config ...``: the runtime configuration, over the HTTP API (admin key).

``set`` and ``apply`` read the version in force and change it against that version
(``If-Match``), so a change made meanwhile by someone else is refused (412), never
overwritten. Values in ``set KEY=VALUE`` are JSON (``0.3``, ``true``, ``"text"``, ``[...]``);
a bare word that is not JSON is taken as text.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

from api.http_cli import Columns, api_commands, call_api, emit, refusing_bad_usage
from api.settings import Settings

PROG = "apiary config"
HISTORY: Columns = (
    ("VERSION", "version"),
    ("AT", "at"),
    ("BY", "actor"),
    ("REASON", "reason"),
    ("RESTORES", "restores"),
    ("CHANGED", "changes"),
)
CHANGES: Columns = (("NAME", "name"), ("BEFORE", "before"), ("AFTER", "after"))


def add_config_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = api_commands(sub, "config", "The runtime configuration (over the HTTP API).", run)
    command("show", "The version in force and its document.")
    setter = command("set", "Set knobs: a new version with these values.")
    setter.add_argument(
        "changes",
        nargs="+",
        metavar="KEY=VALUE",
        help="a knob and its value as JSON (a bare word is text), e.g. max_batch=500",
    )
    setter.add_argument("--reason", required=True, help="why (kept with the version)")
    apply = command("apply", "A whole document from a TOML file, as a new version.")
    apply.add_argument("file", type=Path, help="the TOML document (pools as [[pool]] tables)")
    apply.add_argument("--reason", required=True, help="why (kept with the version)")
    diff = command("diff", "What changed between two versions.")
    diff.add_argument("a", type=int, metavar="FROM", help="a version")
    diff.add_argument("b", type=int, metavar="TO", help="a later (or earlier) version")
    history = command("history", "The versions, newest first: who, when, why, what changed.")
    history.add_argument("--limit", type=int, default=50, help="the newest this many (default 50)")
    rollback = command("rollback", "An earlier version's document in force again.")
    rollback.add_argument("version", type=int, help="the version whose document comes back")
    rollback.add_argument("--reason", help="why (default: rollback to VERSION)")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    def call(method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return call_api(args, settings, PROG, method, path, body, **kw)

    match args.config:
        case "show":
            return call("GET", "/v1/config")[0]
        case "history":
            limit = {"limit": args.limit}
            return call("GET", "/v1/config/history", params=limit, columns=HISTORY)[0]
        case "diff":
            return _diff(args, call, args.a, args.b)
    code, current = call("GET", "/v1/config", show=False)
    if code:
        return code
    match_version = {"If-Match": f'"{current["version"]}"'}
    match args.config:
        case "set":
            body = {"changes": _changes(args.changes), "reason": args.reason}
            return call("PATCH", "/v1/config", body, headers=match_version)[0]
        case "apply":
            body = {"document": _document(args.file), "reason": args.reason}
            return call("PUT", "/v1/config", body, headers=match_version)[0]
        case _:  # rollback
            reason = args.reason or f"rollback to version {args.version}"
            body = {"version": args.version, "reason": reason}
            return call("POST", "/v1/config/rollback", body, headers=match_version)[0]


def _changes(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"not KEY=VALUE: {pair!r}")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def _document(path: Path) -> dict[str, Any]:
    """The TOML file as a document; pools as ``[[pool]]`` tables (as in a pools file)."""
    try:
        with path.open("rb") as f:
            table = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    if "pool" in table:
        table["pools"] = table.pop("pool")
    return table


def _diff(args: argparse.Namespace, call: Any, a: int, b: int) -> int:
    code_a, first = call("GET", f"/v1/config/versions/{a}", show=False)
    code_b, second = call("GET", f"/v1/config/versions/{b}", show=False)
    if code_a or code_b:
        return code_a or code_b
    before, after = first["document"], second["document"]
    changes = [
        {"name": k, "before": before.get(k), "after": after.get(k)}
        for k in sorted(before.keys() | after.keys())
        if before.get(k) != after.get(k)
    ]
    diff = {"from": a, "to": b, "changes": changes}
    emit(args, diff if args.json else {"items": changes}, CHANGES)
    return 0


run = refusing_bad_usage(PROG, _run)
