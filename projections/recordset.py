"""Many rows in one statement: a page's rows passed as one JSON array of objects.

``FROM json_to_recordset(%s::json) AS u(task_id uuid, type text, ...)`` turns the array
back into typed rows on the server, so a page is written with one statement per kind of
change (not one per row, as ``executemany`` pipelines them). The document is made by
orjson in one call (UUIDs and datetimes included): psycopg's own dumping of Python lists
as PostgreSQL arrays escapes element by element in Python and would cost more than the
statements it saves. A jsonb column travels as its text (cast where it is written); a
JSON array becomes a PostgreSQL array (``capabilities text[]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson


def recordset(types: Mapping[str, str], columns: Sequence[str]) -> str:
    """``json_to_recordset(%s::json) AS u(column type, ...)``: the rows of one parameter."""
    defined = ", ".join(f"{c} {types[c]}" for c in columns)
    return f"json_to_recordset(%s::json) AS u({defined})"


def document(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as the parameter of ``recordset``."""
    return orjson.dumps(list(rows)).decode()


def rows_from(columns: Sequence[tuple[str, str]]) -> str:
    """``SELECT columns FROM json_to_recordset(...)``: rows for an INSERT, given each
    column's name and type."""
    names = [c for c, _ in columns]
    return f"SELECT {', '.join(names)} FROM {recordset(dict(columns), names)}"


def tuples(columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]) -> str:
    """Rows of values in ``columns``' order as the parameter of ``rows_from``."""
    names = [c for c, _ in columns]
    return document(dict(zip(names, row, strict=True)) for row in rows)


def given(where: list[str], params: list[Any], conditions: Iterable[tuple[str, Any]]) -> None:
    """Add to a query's ``where`` and ``params`` each condition whose value is given (not
    None): a filter's optional fields, each one placeholder."""
    for condition, value in conditions:
        if value is not None:
            where.append(condition)
            params.append(value)
