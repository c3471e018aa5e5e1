"""The physical limit: raw single-row INSERT transactions per second on the same server."""

from __future__ import annotations

import re
import subprocess
import tempfile

import psycopg
from psycopg.conninfo import conninfo_to_dict

SCRIPT = "INSERT INTO raw_insert (payload) VALUES (repeat('x', 200));\n"


def pgbench_insert_tps(url: str, clients: int, seconds: int) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_insert")
        conn.execute("CREATE TABLE raw_insert (id bigserial PRIMARY KEY, payload text)")
    params = conninfo_to_dict(url)
    args = ["pgbench", "-n", "-c", str(clients), "-j", str(clients), "-T", str(seconds)]
    for flag, key in (("-h", "host"), ("-p", "port"), ("-U", "user")):
        if params.get(key):
            args += [flag, str(params[key])]
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(SCRIPT)
        script.flush()
        out = subprocess.run(
            [*args, "-f", script.name, str(params["dbname"])],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    if not match:
        raise RuntimeError(f"pgbench printed no tps: {out}")
    return float(match.group(1))
