"""Why routing chose a bot: what one dispatch round's tasks share, and what each task's
choice adds. ``explain`` makes the complete explanation from the two.

The complete explanation of an assignment (``GET /v1/tasks/{id}``'s ``assignment``):

    {"policy", "type", "effective_priority", "waited_s", "required",
     "bots": [{"score", "free", "bot", "capacity", "samples", "success"?, "duration_s"?}]}

Most of it is the same for every task of one (capabilities, type) group in a round: the
policy, the type, what is required, and each candidate bot's inputs with the part of its
score that does not move as the round fills bots up (``base``: its success and speed,
weighed). That is a **group**. A task's own part is its **choice**: its group, its
effective priority and wait, and the bots ranked for it (the chosen one first), each with
its free slots at that moment:

    group  = {"type", "required", "w_free", "bots": [inputs, ...], "base": [float, ...]}
    choice = {"group": g, "effective_priority", "waited_s", "bots": [[i, free], ...]}

So the tasks of a round can share one record of their groups (``domain/rounds.py``) and
each assignment carry only its choice. ``explain`` gives exactly what routing gave before
there were rounds: the same keys in the same order, each score the same float expression
(``score_of``, which routing ranks by too) rounded the same way. Floats survive the log's
JSON exactly (the shortest text that reads back as the same float), so an explanation made
from the log equals the one routing saw. The tasks view, the dashboard's timeline and the
domain all make it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Group = dict[str, Any]
Choice = dict[str, Any]


def score_of(base: float, w_free: float, free: int, capacity: int) -> float:
    """A bot's score when it has ``free`` of ``capacity`` slots: its fixed part and the
    free-capacity term. Routing ranks by it; ``explain`` shows it (rounded)."""
    return base + w_free * free / capacity


def explain(policy: str, groups: Sequence[Group], choice: Choice) -> dict[str, Any]:
    """The complete explanation of one task's assignment."""
    group = groups[choice["group"]]
    inputs, base, w_free = group["bots"], group["base"], group["w_free"]
    return {
        "policy": policy,
        "type": group["type"],
        "effective_priority": choice["effective_priority"],
        "waited_s": choice["waited_s"],
        "required": group["required"],
        "bots": [
            {
                "score": round(score_of(base[i], w_free, free, inputs[i]["capacity"]), 4),
                "free": free,
                **inputs[i],
            }
            for i, free in choice["bots"]
        ],
    }


@dataclass(frozen=True, eq=False)  # one round's, by identity: its groups grow as it routes
class RoundInputs:
    """What the choices of one round are relative to: the policy and its groups."""

    policy: str
    groups: list[Group] = field(default_factory=list)

    def explain(self, choice: Choice) -> dict[str, Any]:
        return explain(self.policy, self.groups, choice)

    def narrowed(self, choices: Sequence[Choice]) -> tuple[RoundInputs, list[Choice]]:
        """Only the groups, and in each only the bots, that ``choices`` name, and the
        choices pointed at them: what a record of the round must keep (a group whose tasks
        were all taken meanwhile, or a candidate ranked for none, costs nothing)."""
        kept: dict[int, dict[int, int]] = {}  # group -> its bots kept: index -> new index
        for choice in choices:
            bots = kept.setdefault(choice["group"], {})
            for i, _ in choice["bots"]:
                bots.setdefault(i, len(bots))
        at = {g: n for n, g in enumerate(kept)}
        groups = [_only(self.groups[g], list(bots)) for g, bots in kept.items()]
        pointed = [
            {
                **c,
                "group": at[c["group"]],
                "bots": [[kept[c["group"]][i], free] for i, free in c["bots"]],
            }
            for c in choices
        ]
        return RoundInputs(self.policy, groups), pointed


def _only(group: Group, bots: list[int]) -> Group:
    return {
        **group,
        "bots": [group["bots"][i] for i in bots],
        "base": [group["base"][i] for i in bots],
    }
