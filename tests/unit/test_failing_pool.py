"""Which pools a degraded hive stops launching into (``degradation.failing_pool``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.policies.degradation import failing_pool

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RECENT = NOW - timedelta(seconds=10)
LONG_AGO = NOW - timedelta(seconds=600)


def test_a_pool_whose_bots_keep_failing_is_held() -> None:
    assert failing_pool([("ready", RECENT), ("quarantined", None)], NOW, 60)
    assert failing_pool([("probing", None)], NOW, 60)
    assert failing_pool([("ready", RECENT), ("ready", None)], NOW, 60)  # half of them


def test_a_healthy_pool_scales() -> None:
    assert not failing_pool([], NOW, 60)  # every bot lost: replace them
    assert not failing_pool([("ready", None)], NOW, 60)
    assert not failing_pool([("ready", LONG_AGO), ("ready", None)], NOW, 60)  # long ago
    assert not failing_pool([("ready", RECENT), ("ready", None), ("draining", None)], NOW, 60)
