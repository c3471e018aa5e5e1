"""Every feature of the hive, in the order they plug in (routes, views, loops, CLI)."""

from __future__ import annotations

from api.features import (
    Feature,
    config,
    dashboard,
    fleet,
    hive,
    keys,
    messages,
    profile,
    scaling,
    schedules,
    tasks,
)

FEATURES: list[Feature] = [
    hive.FEATURE,
    tasks.FEATURE,
    fleet.FEATURE,
    schedules.FEATURE,
    scaling.FEATURE,
    messages.FEATURE,
    dashboard.FEATURE,
    config.FEATURE,
    keys.FEATURE,
    profile.FEATURE,
]
