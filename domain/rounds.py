"""A dispatch round: what the explanations of its assignments share, recorded once.

Routing explains every assignment: the policy, the task's type, effective priority and
wait, what it required, and the chosen bot and the runners-up with their inputs and
scores. Most of that is the same for every task of one (capabilities, type) group in a
round, and a round may assign thousands of tasks: each ``Task.Assigned`` carried all of it
(most of its bytes). Now a round that assigns two tasks or more records its groups
once, in a ``DispatchRound``, and each of its ``Task.Assigned`` names the round
(``round_id``) and carries only its own choice (``domain/policies/explanation.py``). The
complete explanation is made from the two wherever it is shown: the tasks view (so
``GET /v1/tasks/{id}`` and the dashboard show what they always showed), the dashboard's
timeline of a task, ``Assignment.why``. A round of one task records no round: its
``Task.Assigned`` carries the complete explanation, as every one did before.

Each record is an aggregate of its own, made once and never changed, in the same save as
the assignments that point to it and ahead of them in the log: recording one needs no
earlier state, so it never loads anything and never conflicts with another writer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from domain.aggregate import HiveAggregate
from domain.cause import Cause
from domain.errors import InvalidInput
from domain.names import check_capabilities, check_short_name, check_text
from domain.policies.explanation import Choice, Group, RoundInputs


class DispatchRound(HiveAggregate):
    class Decided(HiveAggregate.Created):
        policy: str
        groups: list[dict[str, Any]]  # per (capabilities, type): what its choices share

    def __init__(self, policy: str, groups: list[dict[str, Any]]) -> None:
        self.policy = policy
        self.groups = groups

    @classmethod
    def record(
        cls, *, round_id: UUID, inputs: RoundInputs, cause: Cause, at: datetime
    ) -> DispatchRound:
        if not inputs.groups:
            raise InvalidInput("a dispatch round has at least one group")
        return cls._open(
            cls.Decided,
            id=round_id,
            cause=cause,
            at=at,
            policy=check_text("policy", inputs.policy),
            groups=[_checked(g) for g in inputs.groups],
        )

    @property
    def inputs(self) -> RoundInputs:
        return RoundInputs(self.policy, self.groups)

    def explain(self, choice: Choice) -> dict[str, Any]:
        """The complete explanation of an assignment that points to this round."""
        return self.inputs.explain(choice)


def _checked(group: Group) -> Group:
    check_short_name("task type", group["type"])
    check_capabilities(group["required"])
    bots, base = group["bots"], group["base"]
    if not bots or len(base) != len(bots):
        raise InvalidInput("a round's group has at least one bot, and a base score for each")
    if not group["w_free"] >= 0 or any(b["capacity"] < 1 for b in bots):
        raise InvalidInput("a round's group has a free weight >= 0 and bots of capacity >= 1")
    return group
