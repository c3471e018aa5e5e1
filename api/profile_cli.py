"""``apiary profile [--window 5m] [--json]``: the bottleneck report, over the HTTP API.

Findings first, most severe first, one line each; then per type, pool and bot the stages'
p50/p95/p99 and share of end to end (``--json``: the API's answer whole)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from api.http_cli import api_command_maker, call_api, emit, refusing_bad_usage, table
from api.settings import Settings

PROG = "apiary profile"
STAGE_COLUMNS = (
    ("STAGE", "stage"),
    ("N", "count"),
    ("P50", "p50"),
    ("P95", "p95"),
    ("P99", "p99"),
    ("SHARE", "share"),
)


def add_profile_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = api_command_maker(sub, run)
    cmd = command("profile", "Where time goes, and the bottlenecks found (over the HTTP API).")
    cmd.add_argument(
        "--window", default="5m", help="how far back: 30s, 5m, 1h (10s..1h; default 5m)"
    )


def _run(args: argparse.Namespace, settings: Settings) -> int:
    code, answer = call_api(
        args, settings, PROG, "GET", "/v1/profile", None, params={"window": args.window}, show=False
    )
    if code == 0:
        if args.json:
            emit(args, answer)
        else:
            print(render(answer))
    return code


def render(report: Mapping[str, Any]) -> str:
    """The report as people read it: findings, then a table per type, pool and bot."""
    lines = [f"window {report['window_s']:.0f} s (from {report['since']})", "", "findings:"]
    found = report["findings"] or []
    lines += [f"  {i}. [{f['severity']}] {f['summary']}" for i, f in enumerate(found, 1)]
    if not found:
        lines.append("  (none)")
    for title, items, label in (
        ("type", report["types"], "type"),
        ("pool", report["pools"], "name"),
        ("bot", report["bots"], "name"),
    ):
        for item in items:
            lines += ["", f"{title} {item[label]}:{_about(title, item)}"]
            lines.append(_indented(table(_stage_rows(item["stages"]), STAGE_COLUMNS)))
    return "\n".join(lines)


def _about(title: str, item: Mapping[str, Any]) -> str:
    if title == "type":
        return f" {item['pending']} pending; pools {', '.join(item['pools']) or '-'}"
    if title == "pool":
        return f" {item['bots']} of max {item['max_bots']} bots; {item['pending']} pending"
    return f" pool {item['pool'] or '-'}"


def _stage_rows(stages: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "stage": name,
            "count": s["count"],
            "p50": _seconds(s["p50_s"]),
            "p95": _seconds(s["p95_s"]),
            "p99": _seconds(s["p99_s"]),
            "share": None if s["share"] is None else f"{s['share'] * 100:.0f}%",
        }
        for name, s in stages.items()
    ]


def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def _indented(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


run = refusing_bad_usage(PROG, _run)
