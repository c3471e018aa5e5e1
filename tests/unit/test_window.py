"""The window a read covers, as a query gives it: 30s, 5m, 1h; from 10 s to 1 h."""

from __future__ import annotations

import pytest

from api.schemas.window import window_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("30s", 30), ("5m", 300), ("1h", 3600), ("60m", 3600), ("90", 90)],
)
def test_a_duration_is_seconds(text: str, seconds: int) -> None:
    assert window_seconds(text) == seconds


@pytest.mark.parametrize("text", ["9s", "0m", "2h", "61m", "3601", "9999999h"])
def test_a_window_outside_10s_to_1h_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="from 10s to 1h"):
        window_seconds(text)


@pytest.mark.parametrize("text", ["", "5 minutes", "5d", "-5m", "1.5m", "m5", "\uff15m"])
def test_anything_but_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration such as"):
        window_seconds(text)
