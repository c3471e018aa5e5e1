"""The retry policies' part of the config document: a default, and one per task type.

Each becomes the domain's pure ``RetryPolicy``; a type's policy replaces the default
whole (nothing is merged, so what a type does is read in one place).
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from domain.names import SHORT_NAME
from domain.policies.retry import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_S,
    MAX_MULTIPLIER,
    MAX_TIMEOUT_S,
    RetryPolicy,
)

ShortName = Annotated[str, StringConstraints(pattern=SHORT_NAME.pattern, max_length=64)]


class RetryPolicyConfig(BaseModel):
    """How a type's failed attempts are tried again (see ``domain/policies/retry.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=MAX_ATTEMPTS, description="1: never retried")
    initial_backoff_s: float = Field(default=1.0, ge=0, le=MAX_BACKOFF_S)
    multiplier: float = Field(default=2.0, ge=1, le=MAX_MULTIPLIER)
    max_backoff_s: float = Field(default=60.0, ge=0, le=MAX_BACKOFF_S)
    jitter: float = Field(default=0.1, ge=0, le=1, description="a fraction of the delay, added")
    non_retryable: list[ShortName] = Field(
        default=[], max_length=64, description="error kinds never retried"
    )
    timeout_s: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT_S, description="an attempt running longer fails"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("max_backoff_s must be at least initial_backoff_s")
        return self

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            initial_backoff_s=self.initial_backoff_s,
            multiplier=self.multiplier,
            max_backoff_s=self.max_backoff_s,
            jitter=self.jitter,
            non_retryable=frozenset(self.non_retryable),
            timeout_s=self.timeout_s,
        )


class RetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: RetryPolicyConfig = RetryPolicyConfig()
    types: dict[ShortName, RetryPolicyConfig] = Field(
        default={}, max_length=1000, description="a task type's own policy, whole"
    )

    def policies(self) -> RetryPolicies:
        return RetryPolicies(self.default.policy(), {t: p.policy() for t, p in self.types.items()})


class RetryPolicies:
    """A type's policy, looked up on every failure report: one dict lookup."""

    def __init__(self, default: RetryPolicy, types: dict[str, RetryPolicy]) -> None:
        self.default, self.types = default, types
        self.timeouts = default.timeout_s is not None or any(
            p.timeout_s is not None for p in types.values()
        )

    def __call__(self, task_type: str) -> RetryPolicy:
        return self.types.get(task_type, self.default)
