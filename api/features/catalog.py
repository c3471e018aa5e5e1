"""Every feature of the hive, in the order they plug in (routes, views, loops, CLI)."""

from __future__ import annotations

from api.features import (
    Feature,
    config,
    dashboard,
    fleet,
    hive,
    incidents,
    keys,
    messages,
    modes,
    profile,
    scaling,
    schedules,
    tasks,
    timings,
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
    timings.FEATURE,
    modes.FEATURE,
    incidents.FEATURE,
    profile.FEATURE,
]
