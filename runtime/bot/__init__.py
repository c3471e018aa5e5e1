"""The bot: a worker process that registers with the hive, claims tasks and reports them.

``client`` speaks the hive's HTTP contract (docs/http-api.md) through a ``transport``
(``http_transport`` over a ``keepalive`` pool of connections), ``handlers`` and
``exec_handler`` do the work, ``worker`` runs the loops, ``cli`` is ``apiary bot``.
"""

from __future__ import annotations

from typing import TypeAlias

JSON: TypeAlias = "dict[str, JSON] | list[JSON] | str | int | float | bool | None"
"""Any JSON value: what a task's payload and result are."""
