"""Send -> delivered for a message to an idle bot that is long-polling its messages.

One `apiary bot --messages` process waits in its message claim; messages are sent to it one
at a time, each once the one before is acknowledged (watched in the messages view, not
through the API, so watching adds no load to the server). Latencies are differences of the
server's own event timestamps (``Sent`` -> ``Delivered``, one clock), read from each
message's history after the run. ``python -m tests.bench.messaging`` runs it alone.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import httpx
import psycopg

from tests.bench.alone import run_alone
from tests.bench.stats import summary_ms
from tests.e2e.harness import Hive, start_bot
from tests.waiting import wait_for


def message_latency(hive: Hive, client: httpx.Client, enrol: str, count: int) -> dict[str, Any]:
    listener = start_bot(hive, enrol, "listener", "--capabilities", "listen", "--messages")
    try:
        bot_id = wait_for(
            lambda: next(
                (
                    b["id"]
                    for b in client.get("/v1/bots").json()["items"]
                    if b["name"] == "listener"
                ),
                None,
            ),
            timeout=30,
            what="the listening bot",
        )
        ids = []
        with psycopg.connect(hive.db_url, autocommit=True) as conn:
            for i in range(count):
                sent = client.post("/v1/messages", json={"to_bot": bot_id, "body": {"i": i}})
                sent.raise_for_status()
                ids.append(sent.json()["items"][0]["id"])
                wait_for(
                    lambda m=ids[-1]: conn.execute(
                        "SELECT 1 FROM messages_view WHERE message_id = %s "
                        "AND state = 'acknowledged'",
                        (m,),
                    ).fetchone(),
                    timeout=30,
                    what="an acknowledged message",
                    interval=0.01,
                )
        delivered, acked = [], []
        for message_id in ids:
            history = client.get(f"/v1/messages/{message_id}").json()["history"]
            at = {h["type"]: datetime.fromisoformat(h["at"]) for h in history}
            delivered.append((at["Delivered"] - at["Sent"]).total_seconds())
            acked.append((at["Acknowledged"] - at["Sent"]).total_seconds())
        return {"delivered": summary_ms(delivered), "acked": summary_ms(acked), "count": count}
    finally:
        listener.stop()


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200

    def measure(hive: Hive) -> dict[str, Any]:
        return message_latency(hive, hive.client(hive.key("admin")), hive.key("bot"), count)

    return run_alone("msg", measure)


if __name__ == "__main__":
    sys.exit(main())
