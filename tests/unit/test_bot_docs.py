"""docs/bots.md shows each built-in task type by example: every example there is run
against the handler it names, so the docs say what the code does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from runtime.bot.handlers import HANDLERS, HandlerError

DOC = Path(__file__).resolve().parents[2] / "docs" / "bots.md"
BLOCK = re.compile(r"```json\n(.*?)```", re.DOTALL)


def examples() -> list[dict[str, Any]]:
    found = [json.loads(b) for b in BLOCK.findall(DOC.read_text())]
    return [e for e in found if {"type", "payload"} <= e.keys()]


def test_the_doc_shows_every_built_in_type() -> None:
    assert {e["type"] for e in examples()} == set(HANDLERS)


@pytest.mark.parametrize("example", examples(), ids=lambda e: e["type"])
def test_each_example_is_what_the_handler_does(example: dict[str, Any]) -> None:
    handler = HANDLERS[example["type"]]
    if "error" in example:
        with pytest.raises(HandlerError) as refused:
            handler(example["payload"])
        assert str(refused.value) == example["error"]
    else:
        assert handler(example["payload"]) == example["result"]
