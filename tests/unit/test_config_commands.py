"""The runtime configuration's commands (``hive.config``) on the in-memory recorder:
versions, If-Match, rollback, the reasons refused, what changed, and the snapshots."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.cause import Cause
from domain.config import CONFIG_ID, MAX_REASON, SNAPSHOT_EVERY, HiveConfig, changed_paths
from domain.errors import InvalidInput, NotFound, StaleVersion
from domain.hive import Hive
from runtime.config import Knobs

ALICE = Cause("alice", "req-1")
BOB = Cause("bob", "req-2")
CAROL = Cause("carol", "req-3")
DEFAULTS = Knobs().document()


def document(**changes: Any) -> str:
    return Knobs().with_changes(changes).document()


def persisted(hive: Hive) -> int:
    return hive.recorder.max_notification_id() or 0


@pytest.fixture
def seeded(hive: Hive) -> Hive:
    hive.config.seed(DEFAULTS, "first", ALICE)
    return hive


def test_seed_writes_version_1_once(hive: Hive) -> None:
    first = hive.config.seed(DEFAULTS, "from the environment", ALICE)
    assert first.position == persisted(hive) == 1
    again = hive.config.seed(document(max_batch=5), "a second process", BOB)
    assert (again.items, again.position) == ([], None)
    assert persisted(hive) == 1
    config = hive.config.current()
    assert (config.version, config.document) == (1, DEFAULTS)
    assert (config.changed_by, config.reason) == ("alice", "from the environment")


def test_current_before_the_seed_is_not_found(hive: Hive) -> None:
    with pytest.raises(NotFound):
        hive.config.current()


def test_a_change_against_the_current_version_makes_the_next_with_what_changed(
    seeded: Hive,
) -> None:
    committed = seeded.config.change(
        document(max_batch=10, routing_alpha=0.5), 1, "smaller batches", BOB
    )
    [(_, event)] = committed.recorded
    assert isinstance(event, HiveConfig.Changed)
    assert event.originator_version == 2
    assert event.changed == ["max_batch", "routing_alpha"]
    assert event.restores is None
    config = seeded.config.current()
    assert config.version == 2
    assert Knobs.parse(config.document).max_batch == 10
    assert (config.changed_by, config.reason) == ("bob", "smaller batches")


@pytest.mark.parametrize("expected", [0, 1, 3])
def test_a_stale_expected_version_is_refused_naming_the_current_one(
    seeded: Hive, expected: int
) -> None:
    seeded.config.change(document(max_batch=10), 1, "smaller", BOB)
    before = persisted(seeded)
    with pytest.raises(StaleVersion, match="at version 2") as refused:
        seeded.config.change(document(max_batch=20), expected, "mine", CAROL)
    assert refused.value.context["current"] == 2
    assert persisted(seeded) == before
    assert Knobs.parse(seeded.config.current().document).max_batch == 10


def test_the_same_document_writes_nothing(seeded: Hive) -> None:
    committed = seeded.config.change(DEFAULTS, 1, "no change really", BOB)
    assert (committed.items, committed.position) == ([], None)
    assert persisted(seeded) == 1
    assert seeded.config.current().version == 1


def test_rollback_writes_the_old_document_as_a_new_version(seeded: Hive) -> None:
    seeded.config.change(document(max_batch=10, dispatch_page=7), 1, "smaller", BOB)
    committed = seeded.config.rollback(1, 2, "too small", CAROL)
    [(_, event)] = committed.recorded
    assert event.originator_version == 3
    assert event.restores == 1
    assert event.changed == ["dispatch_page", "max_batch"]
    config = seeded.config.current()
    assert (config.version, config.document) == (3, DEFAULTS)
    assert seeded.config.version(3).document == seeded.config.version(1).document


def test_rollback_is_checked_like_a_change(seeded: Hive) -> None:
    seeded.config.change(document(max_batch=10), 1, "smaller", BOB)
    with pytest.raises(StaleVersion):
        seeded.config.rollback(1, 1, "stale", CAROL)
    with pytest.raises(NotFound):
        seeded.config.rollback(99, 2, "nowhere", CAROL)
    assert seeded.config.rollback(2, 2, "to where we are", CAROL).position is None
    assert persisted(seeded) == 2


def test_versions_list_every_version_with_who_and_why(seeded: Hive) -> None:
    seeded.config.change(document(max_batch=10), 1, "smaller", BOB)
    seeded.config.rollback(1, 2, "back", CAROL)
    versions = seeded.config.versions()
    assert [(v.version, v.actor, v.request_id, v.reason) for v in versions] == [
        (1, "alice", "req-1", "first"),
        (2, "bob", "req-2", "smaller"),
        (3, "carol", "req-3", "back"),
    ]
    assert [(v.changed, v.restores) for v in versions] == [
        ([], None),
        (["max_batch"], None),
        (["max_batch"], 1),
    ]
    assert versions[2].document == versions[0].document == DEFAULTS
    assert seeded.config.version(2) == versions[1]


def test_an_unknown_version_is_not_found(seeded: Hive) -> None:
    with pytest.raises(NotFound, match="99") as missing:
        seeded.config.version(99)
    assert missing.value.context["version"] == 99


@pytest.mark.parametrize("reason", ["", "   ", "x" * (MAX_REASON + 1), "nul\x00inside"])
def test_a_bad_reason_is_refused_and_nothing_is_written(hive: Hive, reason: str) -> None:
    with pytest.raises(InvalidInput, match="reason") as refused:
        hive.config.seed(DEFAULTS, reason, ALICE)
    assert refused.value.context["field"] == "reason"
    assert persisted(hive) == 0
    hive.config.seed(DEFAULTS, "first", ALICE)
    with pytest.raises(InvalidInput, match="reason"):
        hive.config.change(document(max_batch=10), 1, reason, BOB)
    assert persisted(hive) == 1


def test_a_reason_of_the_longest_length_is_kept(seeded: Hive) -> None:
    reason = "y" * MAX_REASON
    seeded.config.change(document(max_batch=10), 1, reason, BOB)
    assert seeded.config.version(2).reason == reason


def test_a_long_history_is_snapshotted_and_loads_as_its_replay(seeded: Hive) -> None:
    for version in range(1, SNAPSHOT_EVERY + 2):
        seeded.config.change(document(max_batch=version + 1), version, f"step {version}", BOB)
    assert seeded.log.snapshots is not None
    snapshots = list(seeded.log.snapshots.get(CONFIG_ID))
    assert [s.originator_version for s in snapshots] == [SNAPSHOT_EVERY]
    replayed: Any = None
    for event in seeded.history(CONFIG_ID):
        replayed = event.mutate(replayed)
    loaded: Any = seeded.log.repository.get(CONFIG_ID)
    assert loaded.version == replayed.version == SNAPSHOT_EVERY + 2
    assert (loaded.document, loaded.reason, loaded.changed_by) == (
        replayed.document,
        replayed.reason,
        replayed.changed_by,
    )
    assert Knobs.parse(loaded.document).max_batch == SNAPSHOT_EVERY + 2
    assert seeded.config.current().document == loaded.document
    seeded.config.change(document(max_batch=3), SNAPSHOT_EVERY + 2, "after the snapshot", CAROL)
    assert seeded.config.current().version == SNAPSHOT_EVERY + 3


# -- what changed ------------------------------------------------------------------------


def test_changed_paths_name_nested_keys_and_list_items() -> None:
    before = {"a": {"b": 1, "c": [1, 2, {"d": "x"}]}, "e": [1], "f": {"g": 1}, "gone": 1}
    after = {"a": {"b": 2, "c": [1, 2, {"d": "y"}]}, "e": [1, 2], "f": [1], "new": None}
    assert changed_paths(before, after) == ["a.b", "a.c[2].d", "e", "f", "gone", "new"]
    assert changed_paths([1, [2, 3]], [1, [2, 4]]) == ["[1][1]"]
    assert changed_paths(1, 2) == ["."]
    assert changed_paths({"pools": [{"name": "p", "max_bots": 1}]}, {"pools": []}) == ["pools"]


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3)
)
# Keys as a document has them: names (a key holding "." or "[" would read as a path).
KEYS = st.text(alphabet="abc_", min_size=1, max_size=3)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=16,
)


def _paths(value: Any, prefix: str = "") -> list[tuple[str, list[Any]]]:
    """Every place in ``value``, rendered as ``changed_paths`` renders it, with its keys."""
    out: list[tuple[str, list[Any]]] = [(prefix or ".", [])]
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out += [(p, [key, *keys]) for p, keys in _paths(item, path)]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += [(p, [i, *keys]) for p, keys in _paths(item, f"{prefix}[{i}]")]
    return out


@st.composite
def related_pairs(draw: st.DrawFn) -> tuple[Any, Any, str | None]:
    """Two documents: unrelated, equal (a deep copy), or one with a single value replaced
    (and the path of that value)."""
    before = draw(JSON)
    kind = draw(st.sampled_from(["unrelated", "copy", "replaced"]))
    if kind == "unrelated":
        return before, draw(JSON), None
    after = copy.deepcopy(before)
    if kind == "copy":
        return before, after, None
    path, keys = draw(st.sampled_from(_paths(before)))
    new = draw(JSON)
    if not keys:
        return before, new, path
    holder: Any = after
    for key in keys[:-1]:
        holder = holder[key]
    holder[keys[-1]] = new
    return before, after, path


@settings(max_examples=200, deadline=None)
@given(related_pairs())
def test_changed_paths_are_empty_exactly_when_the_documents_are_equal(
    pair: tuple[Any, Any, str | None],
) -> None:
    before, after, replaced = pair
    changed = changed_paths(before, after)
    assert (changed == []) == (before == after)
    assert changed == sorted(set(changed), key=changed.index)  # each path once
    assert sorted(changed_paths(after, before)) == sorted(changed)
    if replaced is not None and replaced != ".":
        assert all(p.startswith(replaced) for p in changed), (replaced, changed)
    # the documents as the log stores them: the same through a JSON round trip
    assert changed_paths(json.loads(json.dumps(before)), before) == []
