"""The bot's built-in handlers on real inputs, good and bad."""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.bot import JSON
from runtime.bot.handlers import (
    HANDLERS,
    HandlerError,
    TaskError,
    analysis,
    code,
    noop,
    runs_inline,
    syllable_count,
    writing,
)

# -- code ---------------------------------------------------------------------------------

SAMPLE = textwrap.dedent(
    """\
    import os, sys
    from . import sibling
    from a.b import c


    class Hive:
        def claim(self, bots):
            if bots and self or bots:
                return [b for b in bots if b]
            elif bots:
                pass
            else:
                try:
                    pass
                except ValueError:
                    pass

            def inner():
                while True:
                    break


    async def fetch(x):
        return x if x else None


    def nested():
        for i in range(3):
            with open("x") as f:
                if i:
                    if f:
                        pass
    """
)


def test_code_counts_definitions_imports_and_lines() -> None:
    out = code({"source": SAMPLE})
    assert isinstance(out, dict)
    assert out["lines"] == SAMPLE.count("\n") == 32
    assert out["functions"] == 4  # claim, inner, fetch, nested
    assert out["classes"] == 1
    assert out["imports"] == 3
    assert out["imported_modules"] == [".", "a.b", "os", "sys"]
    assert out["top_level_functions"] == ["fetch", "nested"]


def test_code_measures_complexity_per_function() -> None:
    out = code({"source": SAMPLE})
    assert isinstance(out, dict)
    by_name = {f["name"]: f for f in out["complexity"]}  # type: ignore[index, union-attr]
    # claim: if, elif, except, `and`, `or`, comprehension for + its if -> 1 + 7
    assert by_name["Hive.claim"] == {"name": "Hive.claim", "line": 7, "complexity": 8}
    assert by_name["Hive.claim.inner"]["complexity"] == 2  # while
    assert by_name["fetch"]["complexity"] == 2  # conditional expression
    assert by_name["nested"]["complexity"] == 4  # for, if, if


def test_code_nesting_depth_does_not_count_elif_as_a_level() -> None:
    # nested: def > for > with > if > if
    assert code({"source": SAMPLE})["max_nesting_depth"] == 5  # type: ignore[index, call-overload]
    chain = "if a:\n    x = 1\nelif b:\n    x = 2\nelif c:\n    x = 3\n"
    assert code({"source": chain})["max_nesting_depth"] == 1  # type: ignore[index, call-overload]
    assert code({"source": "x = 1\n"})["max_nesting_depth"] == 0  # type: ignore[index, call-overload]


def test_code_never_runs_the_source(tmp_path: object) -> None:
    source = "raise SystemExit('ran')\nimport os\nos._exit(3)\n"
    out = code({"source": source})
    assert isinstance(out, dict)
    assert out["imports"] == 1


def test_code_reports_a_syntax_error_with_its_position() -> None:
    with pytest.raises(HandlerError, match=r"syntax error at line 2, column \d+"):
        code({"source": "x = 1\ndef f(:\n    pass\n"})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "JSON object"),
        ({}, "needs 'source'"),
        ({"source": 42}, "'source' must be Python source text"),
        ({"source": "x = '\0'"}, "null bytes"),
    ],
)
def test_code_refuses_bad_payloads(payload: object, message: str) -> None:
    with pytest.raises(HandlerError, match=message):
        code(payload)  # type: ignore[arg-type]


def test_code_on_empty_source() -> None:
    assert code({"source": ""}) == {
        "lines": 0,
        "functions": 0,
        "classes": 0,
        "imports": 0,
        "imported_modules": [],
        "top_level_functions": [],
        "max_nesting_depth": 0,
        "complexity": [],
    }


# -- analysis -----------------------------------------------------------------------------


def test_analysis_of_numbers() -> None:
    out = analysis({"values": [10, 1, 2, 3, 4, 5, 6, 7, 8, 9]})
    assert isinstance(out, dict)
    assert out["count"] == 10
    assert out["sum"] == 55
    assert out["mean"] == 5.5
    assert out["median"] == 5.5
    assert (out["min"], out["max"]) == (1, 10)
    assert out["stdev"] == pytest.approx(math.sqrt(8.25))
    assert (out["p90"], out["p95"], out["p99"]) == (9, 10, 10)
    histogram = out["histogram"]
    assert isinstance(histogram, list)
    assert [b["count"] for b in histogram] == [1] * 10  # type: ignore[index, call-overload]
    assert histogram[0]["low"] == 1  # type: ignore[index, call-overload]
    assert histogram[-1]["high"] == 10  # type: ignore[index, call-overload]


def test_nearest_rank_percentiles_on_a_hundred_values() -> None:
    out = analysis({"values": list(range(1, 101))})
    assert isinstance(out, dict)
    assert (out["p90"], out["p95"], out["p99"]) == (90, 95, 99)


def test_histogram_when_every_value_is_equal() -> None:
    out = analysis({"values": [0.1, 0.1, 0.1]})
    assert isinstance(out, dict)
    assert out["mean"] == 0.1  # fsum/len would give 0.10000000000000002
    counts = [b["count"] for b in out["histogram"]]  # type: ignore[index, union-attr]
    assert counts == [3] + [0] * 9


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"values": []}, "non-empty list"),
        ({"values": "1,2"}, "non-empty list"),
        ({"values": [1, "2"]}, r'"values"\[1\] is not a finite number'),
        ({"values": [1, True]}, r'"values"\[1\]'),
        ({"values": [1.0, math.inf]}, r'"values"\[1\]'),
        ({"values": [1], "text": "x"}, "exactly one of"),
        ({}, "exactly one of"),
        ({"text": 3}, "'text' must be a string"),
    ],
)
def test_analysis_refuses_bad_payloads(payload: object, message: str) -> None:
    with pytest.raises(HandlerError, match=message):
        analysis(payload)  # type: ignore[arg-type]


finite = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(min_value=-1e300, max_value=1e300),  # 200 of them still sum to a float
)


@given(st.lists(finite, min_size=1, max_size=200))
def test_number_statistics_hold_their_invariants(values: list[int | float]) -> None:
    out = analysis({"values": values})  # type: ignore[dict-item]
    assert isinstance(out, dict)
    lo, hi = out["min"], out["max"]
    assert lo == min(values) and hi == max(values)
    assert lo <= out["mean"] <= hi  # type: ignore[operator]
    assert lo <= out["median"] <= hi  # type: ignore[operator]
    assert lo <= out["p90"] <= out["p95"] <= out["p99"] <= hi  # type: ignore[operator]
    assert out["stdev"] >= 0  # type: ignore[operator]
    assert out["count"] == len(values)
    histogram = out["histogram"]
    assert isinstance(histogram, list) and len(histogram) == 10
    assert sum(b["count"] for b in histogram) == len(values)  # type: ignore[index, call-overload]
    edges = [b["low"] for b in histogram] + [histogram[-1]["high"]]  # type: ignore[index, call-overload]
    assert edges == sorted(edges)


@given(st.lists(st.integers(min_value=-1000, max_value=1000), min_size=1, max_size=100))
def test_integer_statistics_match_the_statistics_module(values: list[int]) -> None:
    out = analysis({"values": values})  # type: ignore[dict-item]
    assert isinstance(out, dict)
    assert out["sum"] == sum(values)
    assert out["mean"] == pytest.approx(statistics.mean(values))
    assert out["median"] == statistics.median(values)
    assert out["stdev"] == pytest.approx(statistics.pstdev(values))


def test_a_sum_beyond_floats_is_refused() -> None:
    with pytest.raises(HandlerError, match="beyond the range of a float"):
        analysis({"values": [1.7e308, 1.7e308]})


def test_analysis_of_text() -> None:
    out = analysis({"text": "The bee and the hive.\nThe bee's hive, THE end!"})
    assert out == {
        "characters": 46,
        "lines": 2,
        "words": 10,
        "unique_words": 6,
        "top_words": [
            {"word": "the", "count": 4},
            {"word": "hive", "count": 2},
            {"word": "and", "count": 1},
            {"word": "bee", "count": 1},
            {"word": "bee's", "count": 1},
            {"word": "end", "count": 1},
        ],
    }


def test_top_words_stop_at_ten() -> None:
    text = " ".join(f"w{i} " * (i + 1) for i in range(15))
    out = analysis({"text": text})
    assert isinstance(out, dict)
    top = out["top_words"]
    assert isinstance(top, list) and len(top) == 10
    assert top[0] == {"word": "w14", "count": 15}


# -- writing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("upper", "THEY'RE THE 3RD BEST-KNOWN BEES."),
        ("lower", "they're the 3rd best-known bees."),
        ("title", "They're The 3rd Best-Known Bees."),
    ],
)
def test_writing_transforms(style: str, expected: str) -> None:
    out = writing({"text": "they're the 3rd best-KNOWN bees.", "style": style})
    assert out == {"style": style, "text": expected}


def test_writing_summary() -> None:
    out = writing({"text": "The cat sat on the mat. It was happy! Was it", "style": "summary"})
    assert out == {
        "style": "summary",
        "first_sentence": "The cat sat on the mat.",
        "words": 11,
        "sentences": 3,
        "syllables": 12,
        "flesch_reading_ease": round(206.835 - 1.015 * 11 / 3 - 84.6 * 12 / 11, 2),
    }


@pytest.mark.parametrize(
    ("word", "syllables"),
    [("cat", 1), ("make", 1), ("table", 2), ("beautiful", 3), ("rhythm", 1), ("the", 1)],
)
def test_syllable_heuristic(word: str, syllables: int) -> None:
    assert syllable_count(word) == syllables


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"text": "x"}, "needs 'style'"),
        ({"text": "x", "style": "shout"}, "must be one of title, upper, lower, summary"),
        ({"text": None, "style": "upper"}, "'text' must be a string"),
        ({"text": "... !!", "style": "summary"}, "at least one word"),
        ("text", "JSON object"),
    ],
)
def test_writing_refuses_bad_payloads(payload: object, message: str) -> None:
    with pytest.raises(HandlerError, match=message):
        writing(payload)  # type: ignore[arg-type]


# -- registry -----------------------------------------------------------------------------


def test_noop_and_the_registry() -> None:
    assert noop({"anything": [1, 2]}) == {}
    assert set(HANDLERS) == {"code", "analysis", "writing", "noop"}
    assert HANDLERS["noop"] is noop
    assert runs_inline(noop)
    assert not runs_inline(code)


# -- failures' kinds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "payload"),
    [(code, {"source": "def ("}), (analysis, {"values": []}), (writing, {"text": "x"})],
)
def test_a_payload_a_handler_cannot_use_is_bad_input_never_retried(
    handler: Callable[[JSON], JSON], payload: JSON
) -> None:
    with pytest.raises(TaskError) as refused:
        handler(payload)
    assert (refused.value.kind, refused.value.retryable) == ("bad-input", False)


def test_a_task_error_says_its_kind_and_is_retryable_unless_told() -> None:
    error = TaskError("the mirror is down", kind="upstream")
    assert (str(error), error.kind, error.retryable) == ("the mirror is down", "upstream", True)
    final = TaskError("never", retryable=False)
    assert (final.kind, final.retryable) == (None, False)
