"""Config propagation: a change of the runtime configuration -> every process reports it.

Two `apiary serve --role api` processes, one `--role engine`, four `apiary bot` processes
(two on each API process), one database. Each of ``changes`` changes is a PATCH /v1/config
through the first API process; from its answer, this process watches the database (not
the API, so that watching adds no load) until every api and engine process (the
``processes`` rows) and every bot (its lease's ``config_version``, said at its heartbeat)
reports the new version.

Run alone: ``python -m tests.bench.config_propagation``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.bench.alone import REPO, run_in_database
from tests.bench.stats import summary_ms
from tests.e2e.harness import Hive, start_bot
from tests.waiting import wait_for

QUIET = {"APIARY_LOG_LEVEL": "WARNING"}


def config_propagation(url: str, home: Path, changes: int = 20) -> dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "APIARY_DATABASE_URL": url, "APIARY_HOME": str(home), **QUIET}
    with open(home / "engine.log", "ab") as log:
        engine = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--role", "engine", "--no-migrate"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    apis: list[Hive] = []
    bots = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            wait_for(
                lambda: conn.execute("SELECT 1 FROM processes WHERE role = 'engine'").fetchone(),
                timeout=60,
                what="the engine process",
            )
            for _ in range(2):
                apis.append(Hive(db_url=url, home=home, settings=QUIET).start("--role", "api"))
            admin = apis[0].client(apis[0].key("admin"))
            enrol = apis[0].key("bot")
            for i in range(4):
                bots.append(start_bot(apis[i % 2], enrol, f"cfg-{i}", "--capabilities", "noop"))

            def versions() -> tuple[int, int, int, int]:
                row = conn.execute(
                    "SELECT (SELECT min(config_version) FROM processes), "
                    "(SELECT count(*) FROM processes), "
                    "(SELECT min(l.config_version) FROM leases l JOIN fleet_view f "
                    " ON f.bot_id = l.holder WHERE f.state = 'ready'), "
                    "(SELECT count(*) FROM fleet_view WHERE state = 'ready')"
                ).fetchone()
                assert row is not None
                return tuple(int(v or 0) for v in row)  # type: ignore[return-value]

            first = admin.get("/v1/config").json()["version"]
            wait_for(
                lambda: versions() == (first, 3, first, 4),
                timeout=60,
                what="3 processes and 4 bots on the first version",
            )
            took = []
            for i in range(changes):
                current = admin.get("/v1/config")
                value = 29.0 if i % 2 == 0 else 30.0
                answer = admin.patch(
                    "/v1/config",
                    json={"changes": {"claim_max_wait_s": value}, "reason": f"bench {i}"},
                    headers={"If-Match": current.headers["ETag"]},
                )
                answer.raise_for_status()
                changed = time.perf_counter()
                want = answer.json()["version"]
                wait_for(
                    lambda w=want: (v := versions())[0] >= w and v[1] == 3 and v[2] >= w,
                    timeout=30,
                    what=f"every process and bot on version {want}",
                    interval=0.002,
                )
                took.append(time.perf_counter() - changed)
        return {**summary_ms(took), "max_ms": round(max(took) * 1000, 1), "changes": changes}
    finally:
        for bot in bots:
            bot.stop()
        for api in apis:
            api.stop()
        engine.terminate()
        engine.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(run_in_database("config", lambda url, home: config_propagation(url, home)))
