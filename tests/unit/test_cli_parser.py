"""The `apiary` parser (issue 11, finding 11): every option says what it is for, the
database-side commands say which database, `--version`, one `--url`/`--key` convention,
and `apiary bot` both runs a bot (as it always did) and steers the fleet."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from importlib.metadata import version

import pytest

from api.bot_cli import operate, run_bot
from api.cli import main, parser
from api.http_cli import cell, fields, table

DATABASE_SIDE = [
    ["serve"],
    ["db", "migrate"],
    ["keys", "create"],
    ["keys", "revoke"],
    ["audit", "verify"],
    ["projections", "rebuild"],
]
OVER_HTTP = ["task", "bot", "schedule", "message", "config"]


def commands(
    p: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, (*path, name))


def command(*path: str) -> argparse.ArgumentParser:
    return dict(commands(parser()))[path]


def test_every_option_and_argument_of_every_command_has_a_help_text() -> None:
    missing = [
        f"apiary {' '.join(path)} {action.option_strings or action.dest}"
        for path, p in commands(parser())
        for action in p._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and not action.help
    ]
    assert missing == []


@pytest.mark.parametrize("path", DATABASE_SIDE, ids=" ".join)
def test_the_database_side_commands_say_which_database(path: list[str]) -> None:
    described = command(*path).description or ""
    assert "APIARY_DATABASE_URL" in described and "embedded" in described


@pytest.mark.parametrize("group", OVER_HTTP)
def test_every_command_over_http_takes_url_key_and_json(group: str) -> None:
    for path, p in commands(command(group), (group,)):
        if p._defaults.get("run") in (None, run_bot):  # a group, or running a bot
            continue
        options = {o for a in p._actions for o in a.option_strings}
        assert {"--url", "--key", "--json"} <= options, path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"apiary {version('apiary')}"


def test_apiary_bot_runs_a_bot_with_or_without_run_and_steers_the_fleet() -> None:
    old = parser().parse_args(["bot", "--hive", "http://h", "--token", "t", "--capabilities", "x"])
    new = parser().parse_args(
        ["bot", "run", "--url", "http://h", "--key", "t", "--capabilities", "x"]
    )
    for args in (old, new):
        assert args.run is run_bot
        assert (args.url, args.key, args.capabilities) == ("http://h", "t", ["x"])
    listing = parser().parse_args(["bot", "list", "--state", "lost", "--name", "demo-1"])
    assert listing.run is operate and (listing.state, listing.bot_name) == ("lost", "demo-1")
    assert listing.pool is None  # not APIARY_BOT_POOL, which a bot run takes by default
    with pytest.raises(SystemExit):
        parser().parse_args(["bot", "run", "--url", "http://h"])  # run needs --capabilities


def test_message_read_waits_up_to_the_apis_30_s(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["message", "read", "--url", "http://127.0.0.1:9", "--key", "k", "--bot", "b"]
    assert main([*argv, "--wait", "30.5"]) == 2
    assert "--wait must be 0..30" in capsys.readouterr().err
    assert main([*argv, "--wait", "30"]) == 1  # accepted: nothing listens there


def test_a_table_aligns_its_columns_and_cuts_long_cells() -> None:
    items = [
        {"id": "a1", "state": "ready", "caps": ["code", "x"], "t": "2030-01-01T09:00:00.123Z"},
        {"id": "b", "state": None, "caps": [], "t": None, "more": {"k": 1}},
    ]
    columns = (("ID", "id"), ("STATE", "state"), ("CAPS", "caps"), ("AT", "t"))
    assert table(items, columns).splitlines() == [
        "ID  STATE  CAPS    AT",
        "a1  ready  code,x  2030-01-01T09:00:00Z",
        "b   -      -       -",
    ]
    assert table([], columns) == "(none)"
    assert table([{"w": {"n": {"m": 1}}}], (("M", "w.n.m"),)).splitlines()[1] == "1"
    assert cell("x" * 100).endswith("…") and len(cell("x" * 100)) == 48
    assert cell({"b": 1, "a": [1]}) == '{"a":[1],"b":1}'
    assert fields({"id": "a", "payload": {"n": 1}}) == 'id       a\npayload  {"n":1}'


def test_task_redrive_builds_its_filter_and_needs_a_reason() -> None:
    from api.task_cli import _redrive

    argv = ["task", "redrive", "--kind", "timeout", "--state", "dead", "--state", "failed"]
    args = parser().parse_args([*argv, "--since", "2030-01-01T00:00:00Z", "--reason", "fixed"])
    assert _redrive(args) == {
        "filter": {
            "states": ["dead", "failed"],
            "error_kind": "timeout",
            "finished_since": "2030-01-01T00:00:00Z",
        },
        "dry_run": False,
        "reason": "fixed",
    }
    dry = parser().parse_args(["task", "redrive", "--dry-run", "--limit", "5", "--reason", "x"])
    assert _redrive(dry) == {"filter": {}, "dry_run": True, "reason": "x", "limit": 5}
    with pytest.raises(SystemExit):
        parser().parse_args(["task", "redrive", "--dry-run"])  # no reason
    with pytest.raises(SystemExit):
        parser().parse_args(["task", "redrive", "--state", "pending", "--reason", "x"])


def test_task_retry_and_dead_parse() -> None:
    retry = parser().parse_args(["task", "retry", "t-1", "--reason", "fixed"])
    assert (retry.task, retry.task_id, retry.reason) == ("retry", "t-1", "fixed")
    dead = parser().parse_args(["task", "dead", "--type", "code", "--kind", "lost"])
    assert (dead.task, dead.type, dead.kind, dead.limit) == ("dead", "code", "lost", 100)
