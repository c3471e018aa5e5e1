"""A page folded per aggregate, then written in a few statements (the tasks and messages
views).

Each aggregate's events in a page become one row change: created within the page, one
INSERT of its final row; otherwise one UPDATE of the columns its events set, grouped by
those columns (one statement per shape), guarded by version so that a page applied again
changes nothing. The view's counts (``projections/counts.py``) move with the rows: a new
row is counted in its final state, and an updated one moves from the state it had (read
by primary key, one query per page) when the update will apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from projections.counts import CountDeltas
from projections.recordset import document, recordset
from projections.runner import Positioned

Rows = dict[UUID, dict[str, Any]]


def fold(
    events: Sequence[Positioned],
    key: str,
    created: type,
    new_row: Callable[[Positioned], dict[str, Any]],
    changes: Callable[[Any], dict[str, Any]],
) -> tuple[Rows, Rows]:
    """The page as (rows to insert, column changes to update), per aggregate id."""
    inserts: Rows = {}
    updates: Rows = {}
    for p in events:
        row_id = p.event.originator_id
        if isinstance(p.event, created):
            inserts[row_id] = new_row(p)
            continue
        row = inserts.get(row_id)
        if row is None:
            row = updates.setdefault(row_id, {key: row_id})
        row.update(changes(p.event))
        row["version"] = p.event.originator_version
        row["position"] = p.position
    return inserts, updates


@dataclass(frozen=True)
class RowTable:
    """A view's table of one row per aggregate, and the counts kept of its rows."""

    table: str
    key: str  # its primary key: the aggregate's id
    types: Mapping[str, str]  # each column's type in the page's JSON document
    jsonb: frozenset[str]  # columns that travel as text and are stored as jsonb
    columns: Sequence[str]  # what an INSERT writes
    counts: str  # the counts table
    counted: Sequence[str]  # its key columns, the state first

    def write(self, cur: psycopg.Cursor[Any], inserts: Rows, updates: Rows) -> None:
        counts = CountDeltas(self.counts, self.counted)
        if inserts:
            cur.execute(self._insert(), (document(inserts.values()),))
            for counted in cur.fetchall():  # none for a row already there
                counts.added(tuple(counted))
        if updates:
            for row_id, version, *counted in cur.execute(self._before(), (list(updates),)):
                row = updates[row_id]
                if "state" in row and version < row["version"]:  # as the UPDATE's guard
                    counts.moved(tuple(counted), row["state"])
        counts.write(cur)
        by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in updates.values():
            by_shape.setdefault(tuple(sorted(row)), []).append(row)
        for shape, rows in by_shape.items():
            cur.execute(self._update(shape), (document(rows),))

    def _value(self, column: str) -> str:
        """The column's value in ``u``, cast back from the type it travelled as."""
        return f"u.{column}::jsonb" if column in self.jsonb else f"u.{column}"

    def _insert(self) -> str:
        return (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) "
            f"SELECT {', '.join(self._value(c) for c in self.columns)} "
            f"FROM {recordset(self.types, self.columns)} "
            f"ON CONFLICT ({self.key}) DO NOTHING RETURNING {', '.join(self.counted)}"
        )

    def _before(self) -> str:
        return (
            f"SELECT {self.key}, version, {', '.join(self.counted)} FROM {self.table} "
            f"WHERE {self.key} = ANY(%s)"
        )

    def _update(self, shape: tuple[str, ...]) -> str:
        sets = ", ".join(f"{c} = {self._value(c)}" for c in shape if c != self.key)
        return (
            f"UPDATE {self.table} t SET {sets} FROM {recordset(self.types, shape)} "
            f"WHERE t.{self.key} = u.{self.key} AND t.version < u.version"
        )
