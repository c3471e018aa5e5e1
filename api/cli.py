"""``apiary``: the commands people and scripts drive. ``apiary <command> --help`` for each."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from api.logs import configure as configure_logging
from api.settings import Settings


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The configured database, or the embedded one under ``settings.home``."""
    from store.database import database_url

    with database_url(os.environ, settings.home.resolve()) as url:
        yield url


def cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from api.bootstrap import migrate

    with database(settings) as url:
        applied = migrate(url)
    print(f"schema up to date ({len(applied)} migration(s) applied now)")
    return 0


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from store.audit import format_report, verify_chain

    with database(settings) as url:
        report = verify_chain(url)
    print(format_report(report))
    return 0 if report.ok else 1


def cmd_projections_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    import gc

    from api.bootstrap import replay_views, views
    from api.serve import GC_THRESHOLDS

    gc.set_threshold(*GC_THRESHOLDS)  # a replay makes garbage by the million, as a server does

    names = [v.name for v in views(settings)]
    if args.view not in (*names, "all"):
        print(f"apiary projections rebuild: no view {args.view!r} ({', '.join(names)})")
        return 2
    with database(settings) as url:
        rebuilt = replay_views(url, settings, args.view)
        for name, position in rebuilt.positions.items():
            print(
                f"view {name} rebuilt up to position {position}"
                f" ({rebuilt.events[name]:,} events, {rebuilt.apply_s[name]:.1f} s of its own)"
            )
        print(f"replayed in {rebuilt.took_s:.1f} s")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from api.serve import serve

    return serve(settings, role=args.role, demo_bots=args.demo_bots, migrate=not args.no_migrate)


DATABASE_NOTE = (
    "The database: APIARY_DATABASE_URL (a libpq URL) or, when unset, an embedded "
    "PostgreSQL under APIARY_HOME (default .apiary), started for the command."
)


def parser() -> argparse.ArgumentParser:
    from runtime.bot.cli import apiary_version

    p = argparse.ArgumentParser(
        prog="apiary",
        description="Apiary: the control plane of a hive of worker bots. The commands "
        "here (serve, db, keys, audit, projections) work on the database itself; task, bot, "
        "schedule, message and config talk to a running hive over HTTP (--url, --key). "
        + DATABASE_NOTE,
    )
    p.add_argument("--version", action="version", version=f"apiary {apiary_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        help: str,
        run: Callable[[argparse.Namespace, Settings], int],
        parent: argparse._SubParsersAction = sub,
    ) -> argparse.ArgumentParser:  # type: ignore[type-arg]
        """A command on the database itself: its help says which database."""
        cmd = parent.add_parser(name, help=help, description=f"{help} {DATABASE_NOTE}")
        cmd.set_defaults(run=run)
        return cmd

    serve = add("serve", "Run the hive: API, engine and views (and demo bots).", cmd_serve)
    serve.add_argument("--host", help="address to listen on (default APIARY_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default APIARY_PORT or 8000)")
    serve.add_argument(
        "--demo-bots",
        type=int,
        default=0,
        metavar="N",
        help="also start N local bot processes doing the built-in task types",
    )
    serve.add_argument(
        "--role",
        choices=("all", "api", "engine"),
        default="all",
        help="all (default): one process for one machine; api or engine: "
        "the pieces split for scale-out over one PostgreSQL",
    )
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not apply the schema first (run `apiary db migrate` yourself)",
    )

    db = sub.add_parser("db", help="Database schema.").add_subparsers(dest="db", required=True)
    add("migrate", "Apply all DDL (idempotent; safe when two run at once).", cmd_db_migrate, db)

    audit = sub.add_parser("audit", help="The audit log (the event log itself).")
    audit_sub = audit.add_subparsers(dest="audit", required=True)
    add(
        "verify",
        "Re-hash the whole chain: OK with count and head, or the first bad position "
        "(exit status 1).",
        cmd_audit_verify,
        audit_sub,
    )

    proj = sub.add_parser("projections", help="The read side.")
    proj_sub = proj.add_subparsers(dest="projections", required=True)
    rebuild = add(
        "rebuild", "Drop views and replay them from the log.", cmd_projections_rebuild, proj_sub
    )
    from api.features.catalog import FEATURES

    rebuild.add_argument("--view", default="all", help="a view's name (default: all of them)")
    for feature in FEATURES:
        if feature.cli is not None:
            feature.cli(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        configure_logging(
            os.environ.get("APIARY_LOG_LEVEL", "INFO"),
            os.environ.get("APIARY_LOG_FORMAT", "text"),
        )
    except ValueError as e:  # a bad level or format: say so, before anything runs
        print(f"apiary: {e}", file=sys.stderr)
        return 2
    settings = Settings()
    if getattr(args, "host", None):
        settings.host = args.host
    if getattr(args, "port", None) is not None:
        settings.port = args.port
    return int(args.run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
