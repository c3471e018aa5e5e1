"""The bot's built-in handlers: pure functions from a task's payload to its result.

Each does real, deterministic work on its input and nothing else (no I/O, no clock, no
executing what it is given). A payload a handler cannot use raises ``HandlerError``; its
message becomes the task's error.

Any handler may raise ``TaskError`` to fail its task with a kind (a short name) and say
whether trying again could help; the bot sends both with the failure, and the hive's
retry policy for the task's type decides (``domain/policies/retry.py``).
"""

from __future__ import annotations

import ast
import math
import re
import statistics
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator

from runtime.bot import JSON

Handler = Callable[[JSON], JSON]


class TaskError(Exception):
    """The task failed: the message becomes its error. ``kind`` is a short name (see
    ``domain.names.SHORT_NAME``) for the retry policy; ``retryable=False`` says another
    attempt would fail the same way, and the task fails for good."""

    def __init__(self, message: str, *, kind: str | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


BAD_INPUT = "bad-input"


class HandlerError(TaskError):
    """The payload cannot be handled; the message says why and becomes the task's error.
    Its kind is ``bad-input``, never retried: the same payload fails the same way."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind=BAD_INPUT, retryable=False)


def _string(payload: JSON, key: str, what: str) -> str:
    if not isinstance(payload, dict):
        raise HandlerError(f"payload must be a JSON object with {key!r}")
    if key not in payload:
        raise HandlerError(f"payload needs {key!r}: {what}")
    value = payload[key]
    if not isinstance(value, str):
        raise HandlerError(f"{key!r} must be {what}")
    return value


# -- code: static analysis of Python source ---------------------------------------------

DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
COMPOUND = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.TryStar,
    ast.Match,
)
BRANCHES = (ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.match_case)


def code(payload: JSON) -> JSON:
    """Static analysis of ``{"source": "<python>"}``; the source is parsed, never run.

    - ``functions``/``classes``: every ``def``/``async def``/``class``, nested ones included;
      ``imports``: ``import``/``from ... import`` statements, ``imported_modules`` their
      modules (relative ones keep their dots).
    - ``max_nesting_depth``: the most compound statements (def, class, if, for, while,
      with, try, match) enclosing one another; an ``elif`` is not a level of its own.
    - ``complexity``: per function (qualified name, line), McCabe's cyclomatic complexity
      ``1 + decision points``: each ``if``/``elif``, conditional expression, ``for``,
      ``while``, ``except``, ``case``, comprehension ``for`` and ``if``, and each extra
      operand of ``and``/``or``. Nested functions and classes are measured on their own.
    - ``lines``: newline-separated lines of the source.
    """
    source = _string(payload, "source", "Python source text")
    try:
        tree = ast.parse(source, filename="<task>")
        return _code_report(source, tree)
    except SyntaxError as e:
        where = f" at line {e.lineno}, column {e.offset}" if e.lineno else ""
        raise HandlerError(f"syntax error{where}: {e.msg}") from None
    except ValueError as e:  # e.g. a NUL byte
        raise HandlerError(f"cannot parse the source: {e}") from None
    except (RecursionError, MemoryError):
        raise HandlerError("the source is nested too deeply to analyse") from None


def _code_report(source: str, tree: ast.Module) -> JSON:
    functions = classes = imports = 0
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, FUNCTIONS):
            functions += 1
        elif isinstance(node, ast.ClassDef):
            classes += 1
        elif isinstance(node, ast.Import):
            imports += 1
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imports += 1
            modules.add("." * node.level + (node.module or ""))
    lines = source.count("\n") + (1 if source and not source.endswith("\n") else 0)
    imported: list[JSON] = [*sorted(modules)]
    top_level: list[JSON] = [n.name for n in tree.body if isinstance(n, FUNCTIONS)]
    complexity: list[JSON] = [
        {"name": name, "line": fn.lineno, "complexity": 1 + _decision_points(fn)}
        for name, fn in _qualified_functions(tree.body, "")
    ]
    return {
        "lines": lines,
        "functions": functions,
        "classes": classes,
        "imports": imports,
        "imported_modules": imported,
        "top_level_functions": top_level,
        "max_nesting_depth": _max_depth(tree),
        "complexity": complexity,
    }


def _qualified_functions(
    body: list[ast.stmt], prefix: str
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function in source order, named ``Class.method`` / ``outer.inner``."""
    stack: list[tuple[ast.AST, str]] = [(node, prefix) for node in reversed(body)]
    while stack:
        node, scope = stack.pop()
        if isinstance(node, DEFINITIONS):
            name = f"{scope}{node.name}"
            if isinstance(node, FUNCTIONS):
                yield name, node
            scope = f"{name}."
        stack.extend((child, scope) for child in reversed(list(ast.iter_child_nodes(node))))


def _decision_points(function: ast.AST) -> int:
    count = 0
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, DEFINITIONS):
            continue
        if isinstance(node, BRANCHES):
            count += 1
        elif isinstance(node, ast.comprehension):
            count += 1 + len(node.ifs)
        elif isinstance(node, ast.BoolOp):
            count += len(node.values) - 1
        stack.extend(ast.iter_child_nodes(node))
    return count


def _max_depth(tree: ast.Module) -> int:
    deepest = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        elif_ = None
        if isinstance(node, ast.If) and len(node.orelse) == 1:
            elif_ = node.orelse[0] if isinstance(node.orelse[0], ast.If) else None
        for child in ast.iter_child_nodes(node):
            nested = isinstance(child, COMPOUND) and child is not elif_
            stack.append((child, depth + 1 if nested else depth))
    return deepest


# -- analysis: numbers or words ---------------------------------------------------------

PERCENTILES = (90, 95, 99)
BUCKETS = 10
TOP_WORDS = 10
WORD = re.compile(r"\w+(?:['\u2019]\w+)*")  # inner straight or curly apostrophes


def analysis(payload: JSON) -> JSON:
    """Statistics of ``{"values": [numbers]}`` or word counts of ``{"text": "..."}``.

    Numbers: count, sum, mean, median, min, max, population standard deviation,
    nearest-rank percentiles p90/p95/p99 (the value at rank ``ceil(p/100 * n)``), and a
    histogram of 10 equal-width buckets over ``[min, max]``: each bucket holds
    ``low <= x < high``, the last one also ``x == max``; when every value is equal they
    all fall in the first bucket.
    Text: characters, lines, words (case-folded runs of letters/digits, inner apostrophes
    kept), unique words, and the 10 most frequent (ties: alphabetical).
    """
    if not isinstance(payload, dict) or ("values" in payload) == ("text" in payload):
        raise HandlerError('payload must be a JSON object with exactly one of "values" or "text"')
    if "values" in payload:
        return _number_stats(payload["values"])
    return _word_stats(_string(payload, "text", "a string"))


def _number_stats(raw: JSON) -> JSON:
    if not isinstance(raw, list) or not raw:
        raise HandlerError('"values" must be a non-empty list of numbers')
    numbers: list[int | float] = []
    for index, v in enumerate(raw):
        if not _is_finite_number(v):
            raise HandlerError(f'"values"[{index}] is not a finite number: {v!r:.40}')
        numbers.append(v)  # type: ignore[arg-type]  # checked just above
    values = sorted(numbers)
    n, lo, hi = len(values), values[0], values[-1]
    all_ints = all(isinstance(v, int) for v in values)
    try:
        total = sum(values) if all_ints else math.fsum(values)
        # fmean is within an ulp of the true mean, which lies in [lo, hi]: keep it there.
        mean = min(max(statistics.fmean(values), lo), hi)
    except OverflowError:
        raise HandlerError('the sum of "values" is beyond the range of a float') from None
    # Likewise the median, between the two middle values (huge ints lose digits as floats).
    median = min(max(statistics.median(values), values[(n - 1) // 2]), values[n // 2])
    return {
        "count": n,
        "sum": total,
        "mean": mean,
        "median": median,
        "min": lo,
        "max": hi,
        "stdev": statistics.pstdev(values),
        **{f"p{p}": values[max(1, (p * n + 99) // 100) - 1] for p in PERCENTILES},
        "histogram": _histogram(values, lo, hi),
    }


def _is_finite_number(value: JSON) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond any float
        return False


def _histogram(ordered: list[int | float], lo: float, hi: float) -> JSON:
    # A convex combination never overflows, unlike hi - lo for extreme floats.
    edges = [lo * (1 - i / BUCKETS) + hi * (i / BUCKETS) for i in range(BUCKETS + 1)]
    edges[0], edges[-1] = lo, hi
    for i in range(1, BUCKETS + 1):
        edges[i] = min(max(edges[i], edges[i - 1]), hi)
    inner = edges[1:-1]
    counts = [0] * BUCKETS
    for v in ordered:
        bucket = min(bisect_right(inner, v), BUCKETS - 1) if lo != hi else 0
        counts[bucket] += 1
    return [{"low": edges[i], "high": edges[i + 1], "count": counts[i]} for i in range(BUCKETS)]


def _word_stats(text: str) -> JSON:
    words = [w.casefold() for w in WORD.findall(text)]
    frequencies = Counter(words)
    top = sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))[:TOP_WORDS]
    return {
        "characters": len(text),
        "lines": len(text.splitlines()),
        "words": len(words),
        "unique_words": len(frequencies),
        "top_words": [{"word": w, "count": c} for w, c in top],
    }


# -- writing: transforming text ---------------------------------------------------------

STYLES = ("title", "upper", "lower", "summary")
SENTENCE = re.compile(r"[^.!?]*(?:[.!?]+|$)")
VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def writing(payload: JSON) -> JSON:
    """``{"text", "style"}``: ``title``/``upper``/``lower`` return the transformed text;
    ``summary`` returns the first sentence, word/sentence/syllable counts and the Flesch
    reading-ease score ``206.835 - 1.015 * words/sentences - 84.6 * syllables/words``.

    Title case capitalises each word (letters/digits with inner apostrophes: "they're"
    -> "They're") and lowercases the rest of it. Sentences end at ``.``, ``!`` or ``?``
    (so "Dr." ends one: a heuristic); text without a final stop is still a sentence.
    Syllables (heuristic): the groups of consecutive vowels (``aeiouy``) in the word's
    letters, minus one for a silent final ``e`` (not after ``l``, as in "table"), at
    least one per word.
    """
    text = _string(payload, "text", "a string")
    style = _string(payload, "style", f"one of {', '.join(STYLES)}")
    if style == "upper":
        return {"style": style, "text": text.upper()}
    if style == "lower":
        return {"style": style, "text": text.lower()}
    if style == "title":
        return {"style": style, "text": WORD.sub(lambda m: m.group().capitalize(), text)}
    if style == "summary":
        return _summary(text)
    raise HandlerError(f'"style" must be one of {", ".join(STYLES)} (got {style!r:.40})')


def _summary(text: str) -> JSON:
    sentences = [s.strip() for s in SENTENCE.findall(text) if WORD.search(s)]
    words = WORD.findall(text)
    if not words:
        raise HandlerError("a summary needs text with at least one word")
    syllables = sum(syllable_count(w) for w in words)
    score = 206.835 - 1.015 * (len(words) / len(sentences)) - 84.6 * (syllables / len(words))
    return {
        "style": "summary",
        "first_sentence": sentences[0],
        "words": len(words),
        "sentences": len(sentences),
        "syllables": syllables,
        "flesch_reading_ease": round(score, 2),
    }


def syllable_count(word: str) -> int:
    letters = "".join(c for c in word.lower() if c.isalpha())
    groups = len(VOWEL_GROUPS.findall(letters))
    if groups > 1 and letters.endswith("e") and not letters.endswith(("le", "ee", "ye")):
        groups -= 1
    return max(1, groups)


# -- noop -------------------------------------------------------------------------------


def noop(payload: JSON) -> JSON:
    """Does nothing and says so: the benchmark's task."""
    return {}


HANDLERS: dict[str, Handler] = {
    "code": code,
    "analysis": analysis,
    "writing": writing,
    "noop": noop,
}

INLINE: frozenset[Handler] = frozenset({noop})
"""Handlers cheap enough to run on the claim thread instead of hopping to the pool."""


def runs_inline(handler: Handler) -> bool:
    return handler in INLINE
