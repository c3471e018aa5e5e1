"""What the CLI's API commands share: one authenticated request, their options, and how an
answer is shown.

``apiary task``, ``bot``, ``schedule``, ``message`` and ``config`` talk to a running hive
over HTTP, so they get the API's validation and are recorded under the key's principal like
any client. Every one takes ``--url`` (``APIARY_URL``), ``--key`` (``APIARY_KEY``) and
``--json``: people get a table (a list) or ``name: value`` lines (one thing), scripts get
the API's JSON as it came. A refusal goes to stderr (the problem's JSON with ``--json``)
with exit status 1; bad usage is 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from api.settings import Settings

if TYPE_CHECKING:
    import httpx

TIMEOUT_S = 15.0
MAX_CELL = 48  # a table's cell is cut to this many characters (--json shows all)
FRACTION_OF_SECOND = re.compile(r"(T\d\d:\d\d:\d\d)\.\d+")

# A table's columns: (heading, the item's field: dotted for a nested one).
Columns = Sequence[tuple[str, str]]
Command = Callable[[str, str], argparse.ArgumentParser]


def api_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    help: str,
    run: Callable[[argparse.Namespace, Settings], int],
) -> Command:
    """A command group (``apiary <name> ...``); returns a maker of its sub-commands, each
    with ``--url``, ``--key`` and ``--json``."""
    group = sub.add_parser(name, help=help, description=help)
    return api_command_maker(group.add_subparsers(dest=name, required=True), run)


def api_command_maker(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    run: Callable[[argparse.Namespace, Settings], int],
) -> Command:
    """A maker of API commands in ``commands`` (a group made elsewhere: ``apiary bot``)."""

    def command(cmd_name: str, cmd_help: str) -> argparse.ArgumentParser:
        cmd = commands.add_parser(cmd_name, help=cmd_help, description=cmd_help)
        cmd.set_defaults(run=run)
        cmd.add_argument(
            "--url", help="the hive's API (default APIARY_URL, else http://APIARY_HOST:APIARY_PORT)"
        )
        cmd.add_argument(
            "--key", help="an API key (default APIARY_KEY, else the admin key of `apiary serve`)"
        )
        cmd.add_argument(
            "--json", action="store_true", help="print the API's JSON answer (for scripts)"
        )
        return cmd

    return command


def refusing_bad_usage(
    prog: str, run: Callable[[argparse.Namespace, Settings], int]
) -> Callable[[argparse.Namespace, Settings], int]:
    """``run``, with a ValueError (a bad argument found while building the request) said on
    stderr and exit status 2, as argparse does for its own."""

    def guarded(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return run(args, settings)
        except ValueError as e:
            print(f"{prog}: {e}", file=sys.stderr)
            return 2

    return guarded


def add_paging(cmd: argparse.ArgumentParser, limit: int = 100, most: int = 500) -> None:
    cmd.add_argument(
        "--limit", type=int, default=limit, help=f"at most this many (1..{most}, default {limit})"
    )
    cmd.add_argument("--cursor", help="the next page: the cursor a previous page gave")


def query(**params: Any) -> dict[str, Any]:
    """Query parameters, without the ones not given."""
    return {k: v for k, v in params.items() if v is not None}


def call_api(
    args: argparse.Namespace,
    settings: Settings,
    prog: str,
    method: str,
    path: str,
    body: Any,
    *,
    params: Mapping[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    show: bool = True,
    columns: Columns | None = None,
    timeout_s: float = TIMEOUT_S,
) -> tuple[int, Any]:
    """One request with the key of ``--key``/APIARY_KEY (or the local admin key); shows the
    answer (unless ``show`` is False: a refusal always, on stderr): a table of its
    ``items`` in ``columns``, else its fields. Returns the exit code and the answer."""
    import httpx

    key = args.key or os.environ.get("APIARY_KEY") or _admin_key(settings)
    if not key:
        print(f"{prog}: no API key (--key, APIARY_KEY)", file=sys.stderr)
        return 2, None
    url = args.url or os.environ.get("APIARY_URL") or f"http://{settings.host}:{settings.port}"
    logging.getLogger("httpx").setLevel(logging.WARNING)  # stderr carries only the problem
    try:
        with httpx.Client(base_url=url, timeout=timeout_s) as client:
            response = client.request(
                method,
                path,
                json=body,
                params=params,
                headers={"Authorization": f"Bearer {key}", **(headers or {})},
            )
    except httpx.HTTPError as e:
        print(f"{prog}: cannot reach {url}: {e}", file=sys.stderr)
        return 1, None
    answer = _answer(response)
    if not response.is_success:
        show_problem(args, prog, response, answer)
        return 1, answer
    if show:
        emit(args, answer, columns)
    return 0, answer


def emit(args: argparse.Namespace, answer: Any, columns: Columns | None = None) -> None:
    """An answer on stdout: its JSON with ``--json``; else a table of its ``items`` when
    ``columns`` are given (the next page's cursor, if any, on stderr), else its fields."""
    if getattr(args, "json", False) or not isinstance(answer, dict):
        print(json.dumps(answer, indent=2))
    elif columns is not None and isinstance(answer.get("items"), list):
        print(table(answer["items"], columns))
        if answer.get("next_cursor"):
            print(f"(more: --cursor {answer['next_cursor']})", file=sys.stderr)
    else:
        print(fields(answer))


def table(items: Sequence[Mapping[str, Any]], columns: Columns) -> str:
    """Aligned columns under their headings; ``(none)`` when there is nothing."""
    if not items:
        return "(none)"
    rows = [[heading for heading, _ in columns]]
    rows += [[cell(_field(item, name)) for _, name in columns] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def fields(record: Mapping[str, Any]) -> str:
    """One thing as ``name: value`` lines (a nested value as compact JSON)."""
    width = max((len(k) for k in record), default=0)
    return "\n".join(f"{k.ljust(width)}  {cell(v, cut=False)}" for k, v in record.items())


def cell(value: Any, *, cut: bool = True) -> str:
    if value is None or value == []:
        text = "-"
    elif isinstance(value, str):
        text = FRACTION_OF_SECOND.sub(r"\1", value)  # a time to the second
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = ",".join(value)
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    else:
        text = str(value)
    text = " ".join(text.split())  # one line per row
    return text[: MAX_CELL - 1] + "…" if cut and len(text) > MAX_CELL else text


def show_problem(
    args: argparse.Namespace, prog: str, response: httpx.Response, answer: Any
) -> None:
    """A refusal on stderr: the problem's JSON with ``--json``, else one line and a line
    per invalid field."""
    if getattr(args, "json", False) and answer is not None:
        print(json.dumps(answer, indent=2), file=sys.stderr)
        return
    if not isinstance(answer, dict):  # not the hive answering (a proxy?): show what came
        print(f"{prog}: HTTP {response.status_code}: {response.text[:2000]}", file=sys.stderr)
        return
    slug = str(answer.get("type", "")).rsplit("/", 1)[-1]
    detail = answer.get("detail") or answer.get("title") or ""
    print(f"{prog}: {response.status_code} {slug}: {detail}", file=sys.stderr)
    for error in answer.get("errors") or []:
        where = ".".join(str(p) for p in error.get("loc", []))
        print(f"  {where}: {error.get('msg')}", file=sys.stderr)
    for item in answer.get("items") or []:  # a batch's refused items
        print(f"  {cell(item, cut=False)}", file=sys.stderr)


def _answer(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _field(item: Mapping[str, Any], name: str) -> Any:
    value: Any = item
    for part in name.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _admin_key(settings: Settings) -> str | None:
    """The key `apiary serve` keeps for its operator, when this machine runs the hive."""
    path = settings.home / "admin.key"
    return path.read_text().strip() if path.is_file() else None
