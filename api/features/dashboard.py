"""The dashboard: its pages, data and live stream (read from the views)."""

from __future__ import annotations

from api.dashboard import routes
from api.features import Feature

FEATURE = Feature("dashboard", routes=routes.install)
