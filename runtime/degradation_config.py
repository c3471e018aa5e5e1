"""The degradation manager's part of the config document (see
``domain/policies/degradation.py``): which incidents call for which mode, how long the hive
must be calm to come down, and what ``degraded`` and ``critical`` cost whom."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.incidents import RuleName
from domain.policies.degradation import DegradationRules
from domain.policies.degradation import ModeRule as ModeRulePolicy
from domain.tasks import MAX_PRIORITY, MIN_PRIORITY

MAX_S = 24 * 3600.0


class ModeRule(BaseModel):
    """An open incident of ``rule`` at ``severity`` or above calls for ``mode``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: RuleName
    mode: Literal["degraded", "critical"]
    severity: Literal["warning", "critical"] = "warning"


# No rule for ``database``: while the database is away every process acts as critical on
# its own (``api/mode_gate.py``), and the detector records the outage once the log can be
# written again, as history; mapping it to a mode would refuse clients after the outage.
DEFAULT_RULES = [
    ModeRule(rule="cascade", mode="degraded"),
    ModeRule(rule="bots-lost", mode="degraded", severity="critical"),
    ModeRule(rule="failure-spike", mode="degraded", severity="critical"),
]


class DegradationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[ModeRule] = Field(
        default=DEFAULT_RULES, max_length=100, description="which incidents call for a mode"
    )
    calm_s: float = Field(
        default=30.0, ge=0, le=MAX_S, description="a lower mode due this long: the hive comes down"
    )
    shed_below_priority: int = Field(
        default=5,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY + 1,
        description="degraded: submissions with a task below this priority are shed or deferred",
    )
    degraded_submissions: Literal["shed", "defer"] = Field(
        default="shed", description="shed: 503 with Retry-After; defer: accepted, defer_s later"
    )
    defer_s: float = Field(default=60.0, gt=0, le=MAX_S, description="how far a deferral is")
    retry_after_s: int = Field(
        default=5, ge=1, le=3600, description="Retry-After of what a mode refuses"
    )
    failing_window_s: float = Field(
        default=60.0,
        gt=0,
        le=MAX_S,
        description="degraded: a bot that failed or was lost this recently is kept away from",
    )
    stream_coalesce_s: float = Field(
        default=2.0, ge=0, le=60, description="degraded: the dashboard's push, at most this often"
    )

    def policy(self) -> DegradationRules:
        return DegradationRules(
            tuple(ModeRulePolicy(r.rule, r.mode, r.severity) for r in self.rules), self.calm_s
        )
