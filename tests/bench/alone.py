"""Running one benchmark by itself: a fresh migrated database, one `apiary serve` on it,
the measurement, its result printed; everything removed afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.bootstrap import migrate
from store.database import database_url
from tests.e2e.harness import Hive
from tests.pg import create_database, drop_database, unique_database_name

REPO = Path(__file__).resolve().parents[2]


def run_alone(name: str, measure: Callable[[Hive], Any]) -> int:
    def on_a_hive(url: str, home: Path) -> Any:
        hive = Hive(db_url=url, home=home, settings={"APIARY_LOG_LEVEL": "WARNING"}).start()
        try:
            return measure(hive)
        finally:
            hive.stop()

    return run_in_database(name, on_a_hive)


def run_in_database(name: str, measure: Callable[[str, Path], Any]) -> int:
    """A fresh migrated database and a home; ``measure(url, home)`` starts what it needs."""
    with database_url(os.environ, (REPO / ".apiary").resolve()) as server:
        db = unique_database_name(f"apiary_bench_{name}")
        url = create_database(server, db)
        home = Path(tempfile.mkdtemp(prefix=f"apiary-bench-{name}-"))
        try:
            migrate(url)
            print(measure(url, home), flush=True)
        finally:
            drop_database(server, db)
            shutil.rmtree(home, ignore_errors=True)
    return 0
