"""``apiary incident ...``: list, show, acknowledge and resolve incidents, over the HTTP API.

A list is a table, newest first (``--json``: the API's page, with its ``next_cursor``);
``show`` prints one incident with its evidence and timeline.
"""

from __future__ import annotations

import argparse
from typing import Any

from api.http_cli import Columns, add_paging, api_commands, call_api, query, refusing_bad_usage
from api.settings import Settings
from domain.incidents import RULES, SEVERITIES, IncidentState

PROG = "apiary incident"
COLUMNS: Columns = (
    ("ID", "id"),
    ("RULE", "rule"),
    ("SUBJECT", "subject"),
    ("SEVERITY", "severity"),
    ("STATE", "state"),
    ("OPENED", "opened_at"),
    ("SUMMARY", "summary"),
)


def add_incident_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = api_commands(sub, "incident", "Incidents the hive detected (over the HTTP API).", run)
    listing = command("list", "List incidents, newest first (filters combine).")
    states = [str(s) for s in IncidentState]
    listing.add_argument("--state", choices=states, help="only incidents in this state")
    listing.add_argument("--rule", choices=RULES, help="only incidents of this rule")
    severities = [str(s) for s in SEVERITIES]
    listing.add_argument("--severity", choices=severities, help="only this severe")
    add_paging(listing, limit=50)
    show = command("show", "Show one incident: its evidence and its timeline.")
    show.add_argument("incident_id", metavar="ID", help="the incident's id")
    ack = command("ack", "Acknowledge an incident (admin): you have seen it.")
    ack.add_argument("incident_id", metavar="ID", help="the incident's id")
    ack.add_argument("--note", required=True, help="what you are doing about it (kept)")
    resolve = command("resolve", "Resolve an incident by hand (admin).")
    resolve.add_argument("incident_id", metavar="ID", help="the incident's id")
    resolve.add_argument("--reason", required=True, help="why it is over (kept in the log)")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    def call(method: str, path: str, body: Any = None, **kw: Any) -> int:
        return call_api(args, settings, PROG, method, path, body, **kw)[0]

    match args.incident:
        case "list":
            found = query(
                state=args.state,
                rule=args.rule,
                severity=args.severity,
                limit=args.limit,
                cursor=args.cursor,
            )
            return call("GET", "/v1/incidents", params=found, columns=COLUMNS)
        case "show":
            return call("GET", f"/v1/incidents/{args.incident_id}")
        case "ack":
            return call("POST", f"/v1/incidents/{args.incident_id}/ack", {"note": args.note})
        case _:  # resolve
            body = {"reason": args.reason}
            return call("POST", f"/v1/incidents/{args.incident_id}/resolve", body)


run = refusing_bad_usage(PROG, _run)
