"""The dashboard's live stream against a real `apiary serve`: a signed-in subscriber hears
of a submitted task without asking. (How fast: `python -m tests.bench.dashboard_stream`.)"""

from __future__ import annotations

import pytest

from tests.e2e.harness import Hive
from tests.e2e.sse import DashboardStream

pytestmark = pytest.mark.e2e


def test_a_subscriber_hears_that_the_views_moved_past_a_submitted_task(hive: Hive) -> None:
    hive.start()
    key = hive.key("client")
    with DashboardStream(hive.url, key) as stream:
        since = len(stream.heard)
        created = hive.client(key).post("/v1/tasks", json={"type": "code"})
        assert created.status_code == 201, created.text
        position = created.json()["position"]
        heard = stream.wait(
            lambda h: h.kind == "views" and h.data.get("tasks", 0) >= position,
            since=since,
            timeout=10,
        )
    assert heard.data["tasks"] >= position
