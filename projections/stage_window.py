"""The stages of the last hour, minute by minute, per task type, per bot and per pool: what
the bottleneck report reads for a window (``window=5m``).

The stages view computes each duration once and hands it here with the minute it ended
in (its event's time), the task's type and the bot (and that bot's pool) holding the
attempt. One row counts a bucket of one minute of one stage in one scope:

- ``type``: per task type (``key`` is empty);
- ``bot``: per bot (``key`` is its id) and task type;
- ``pool``: per pool (``key`` is its name) and task type; a bot without a pool has none.

A row has the bucket's count and the summed whole milliseconds, so a window gives both
percentiles (``projections/histogram.py``) and the share of end-to-end time each stage
takes. Rows are kept for the hour before the newest minute counted, as ``stage_minutes``
is kept for a day: a duration that ends in a minute older than that is not counted, and
older rows are deleted when the newest minute moves on. The newest minute only grows with
the log, so what is kept does not depend on the paging, and a rebuild from zero equals
the view kept incrementally.

A bot's pool is fixed when it registers (``Bot.Registered.pool``), so the view keeps each
pooled bot's pool in ``stage_bot_pools`` from the log itself, never from the fleet view,
which runs apart and may be behind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from projections.recordset import rows_from, tuples
from store.migrations import Migration

KEEP_WINDOW = timedelta(hours=1)
SCOPES = ("type", "bot", "pool")
NO_KEY = ""  # the type scope's key: the type is its own column

WINDOW_COLUMNS = (
    ("scope", "text"),
    ("key", "text"),
    ("type", "text"),
    ("stage", "text"),
    ("minute", "timestamptz"),
    ("bucket", "smallint"),
    ("count", "bigint"),
    ("sum_ms", "bigint"),
)
ADD_WINDOW = (
    "INSERT INTO stage_window (scope, key, type, stage, minute, bucket, count, sum_ms) "
    f"{rows_from(WINDOW_COLUMNS)} "
    "ON CONFLICT (minute, scope, key, type, stage, bucket) DO UPDATE SET "
    "count = stage_window.count + EXCLUDED.count, "
    "sum_ms = stage_window.sum_ms + EXCLUDED.sum_ms"
)
POOL_COLUMNS = (("bot_id", "uuid"), ("pool", "text"))
ADD_POOLS = (
    f"INSERT INTO stage_bot_pools (bot_id, pool) {rows_from(POOL_COLUMNS)} "
    "ON CONFLICT (bot_id) DO NOTHING"
)

WINDOW_MIGRATIONS = [
    Migration(
        235,
        "views: stages per minute for the last hour per type, bot and pool; the run time "
        "and holder of each open task (the bottleneck report)",
        """
        CREATE TABLE IF NOT EXISTS public.stage_window (
            scope text NOT NULL,
            key text NOT NULL,
            type text NOT NULL,
            stage text NOT NULL,
            minute timestamptz NOT NULL,
            bucket smallint NOT NULL,
            count bigint NOT NULL,
            sum_ms bigint NOT NULL,
            PRIMARY KEY (minute, scope, key, type, stage, bucket)
        );
        CREATE TABLE IF NOT EXISTS public.stage_bot_pools (
            bot_id uuid PRIMARY KEY,
            pool text NOT NULL
        );
        ALTER TABLE public.stage_open_tasks ADD COLUMN IF NOT EXISTS bot_id uuid;
        ALTER TABLE public.stage_open_tasks ADD COLUMN IF NOT EXISTS pool text;
        ALTER TABLE public.stage_open_tasks
            ADD COLUMN IF NOT EXISTS ran_us bigint NOT NULL DEFAULT 0;
        """,
    ),
]


# type, bot (its id as an integer: a UUID's hash is Python code), pool, stage, minute, bucket
Cell = tuple[str, int | None, str | None, str, datetime, int]


@dataclass
class WindowTally:
    """What one page adds to ``stage_window``, folded in memory by the finest key (type,
    bot, pool, stage, minute, bucket): one dictionary update per duration. The scopes
    are drawn from these cells when the page is written (a few hundred cells, however
    many events)."""

    newest: datetime | None  # the newest minute counted, the stored one to begin with
    stored: datetime | None = None
    cells: dict[Cell, list[int]] = field(default_factory=dict)  # [count, sum_ms]

    def __post_init__(self) -> None:
        self.stored = self.newest

    def observe(
        self,
        type_: str,
        bot: UUID | None,
        pool: str | None,
        stage: str,
        minute: datetime,
        bucket: int,
        ms: int,
    ) -> None:
        newest = self.newest
        if newest is None or minute > newest:
            self.newest = minute
        elif minute < newest - KEEP_WINDOW:
            return  # older than the hour kept
        key = (type_, None if bot is None else bot.int, pool, stage, minute, bucket)
        cell = self.cells.get(key)
        if cell is None:
            self.cells[key] = [1, ms]
        else:
            cell[0] += 1
            cell[1] += ms

    def rows(self) -> list[tuple[str, str, str, str, datetime, int, int, int]]:
        """The cells added up per scope: per type, per bot (and type), per pool (and
        type)."""
        counts: Counter[tuple[str, str, str, str, datetime, int]] = Counter()
        sums: Counter[tuple[str, str, str, str, datetime, int]] = Counter()
        for (type_, bot, pool, stage, minute, bucket), (n, ms) in self.cells.items():
            keys = [("type", NO_KEY, type_, stage, minute, bucket)]
            if bot is not None:
                keys.append(("bot", str(UUID(int=bot)), type_, stage, minute, bucket))
                if pool is not None:
                    keys.append(("pool", pool, type_, stage, minute, bucket))
            for k in keys:
                counts[k] += n
                sums[k] += ms
        return [(*k, n, sums[k]) for k, n in sorted(counts.items())]

    def write(self, cur: psycopg.Cursor[Any]) -> None:
        if not self.cells or self.newest is None:
            return
        cur.execute(ADD_WINDOW, (tuples(WINDOW_COLUMNS, self.rows()),))
        if self.stored is None or self.newest > self.stored:
            cur.execute("DELETE FROM stage_window WHERE minute < %s", (self.newest - KEEP_WINDOW,))


def newest_minute(cur: psycopg.Cursor[Any]) -> datetime | None:
    """The newest minute ``stage_window`` counted (the primary key leads with it)."""
    row = cur.execute("SELECT max(minute) FROM stage_window").fetchone()
    return row[0] if row else None


def note_pools(cur: psycopg.Cursor[Any], registered: dict[UUID, str]) -> None:
    """Keep the pools of the bots registered in a page (a bot registers once)."""
    if registered:
        cur.execute(ADD_POOLS, (tuples(POOL_COLUMNS, sorted(registered.items())),))


def pools_of(
    cur: psycopg.Cursor[Any], bots: Iterable[UUID], registered: dict[UUID, str]
) -> dict[UUID, str]:
    """The pools of these bots: those registered in this page (``registered``), the others
    as stored; a bot without a pool is not in the answer."""
    wanted = [b for b in set(bots) if b not in registered]
    found = dict(registered)
    if wanted:
        cur.execute("SELECT bot_id, pool FROM stage_bot_pools WHERE bot_id = ANY(%s)", (wanted,))
        found.update(cur.fetchall())
    return found
