"""The runtime configuration's document: every knob that can change while the hive runs.

One version of it is in force at each point of the log (``domain/config.py``); every
process keeps the current one in memory (``runtime/live_config.py``) and its parts read
their knobs from there, so a change reaches them within a second, without a restart. Only
what a process needs before it can read the log stays in the environment (``api.settings``:
the database URL, host, port, home); ``Settings`` also carries these knobs, under the same
names (``APIARY_<NAME>``), to seed the first version.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.policies.aging import Aging
from domain.policies.routing import RoutingConfig, Weights
from runtime.breaker_config import BreakerConfig
from runtime.degradation_config import DegradationConfig
from runtime.incident_config import IncidentConfig
from runtime.retry_config import RetryConfig
from runtime.scaling.pools import PoolConfig

Weight = Annotated[float, Field(ge=0, le=1)]
MAX_BATCH_CEILING = 100_000  # what max_batch may be raised to (the API documents it)


class RateLimit(BaseModel):
    """A token bucket: up to ``burst`` requests at once, ``per_s`` a second after that."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_s: float = Field(gt=0, le=1_000_000)
    burst: int = Field(ge=1, le=1_000_000)


class RateLimits(BaseModel):
    """Per key, by its role (a bot's own key is a bucket per bot; an enrolment key's is
    shared by every bot it registers), and per client address for what anyone may try.
    Each API process keeps its own buckets: N API processes admit N times these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    admin: RateLimit = RateLimit(per_s=2000, burst=4000)
    client: RateLimit = RateLimit(per_s=1000, burst=2000)
    enrolment: RateLimit = RateLimit(per_s=100, burst=500)
    bot: RateLimit = RateLimit(per_s=2000, burst=4000)  # heartbeats and claims, in a drain
    failed_auth: RateLimit = RateLimit(per_s=10, burst=20)  # 401s, per client address
    sign_in: RateLimit = RateLimit(per_s=10, burst=20)  # dashboard sign-ins, per address


class Knobs(BaseModel):
    """The document. Unknown names are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # -- what a request may carry -------------------------------------------------------
    max_payload_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_batch: int = Field(default=1000, ge=1, le=MAX_BATCH_CEILING, description="items per batch")
    rate_limits: RateLimits = Field(
        default=RateLimits(), description="token buckets per key's role and per address"
    )
    # -- leases and waits ---------------------------------------------------------------
    bot_lease_ttl_s: float = Field(
        default=5.0, gt=0, le=3600, description="silence before a bot is lost"
    )
    heartbeat_interval_s: float = Field(default=1.5, gt=0, le=600)
    reaper_interval_s: float = Field(default=0.5, gt=0, le=60)
    claim_max_wait_s: float = Field(default=30.0, gt=0, le=300)
    message_visibility_s: float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description="a delivered message unacknowledged this long is redelivered",
    )
    # -- retries ------------------------------------------------------------------------
    retry: RetryConfig = Field(
        default=RetryConfig(), description="retry policies: a default, and per task type"
    )
    breaker: BreakerConfig = Field(
        default=BreakerConfig(), description="each bot's circuit breaker"
    )
    degradation: DegradationConfig = Field(
        default=DegradationConfig(), description="the hive's modes: when, and what they cost"
    )
    profiling: bool = Field(
        default=True,
        description="each process counts its own timings (requests, loop rounds, saves, "
        "view pages); off: none are, and the bottleneck report says nothing of them",
    )
    incidents: IncidentConfig = Field(
        default=IncidentConfig(), description="the incident detector's rules"
    )
    # -- routing ------------------------------------------------------------------------
    dispatch_page: int = Field(
        default=2000, ge=1, le=100_000, description="pending tasks per dispatch round"
    )
    routing_alpha: float = Field(
        default=0.2, gt=0, le=1, description="weight of each new outcome in what routing learns"
    )
    routing_aging_s: float = Field(
        default=30.0, gt=0, description="waiting this long raises a task's priority one step"
    )
    routing_success_weight: Weight = 0.5
    routing_speed_weight: Weight = 0.2
    routing_free_weight: Weight = 0.3
    # -- the read side ------------------------------------------------------------------
    projection_page: int = Field(
        default=5000, ge=1, le=100_000, description="events per view transaction, at most"
    )
    # -- memory: what a process keeps, bounded by what it costs --------------------------
    aggregate_cache_mb: int = Field(
        default=64, ge=1, le=65_536, description="recently used aggregates kept in memory"
    )
    decoded_events_mb: int = Field(
        default=32, ge=1, le=65_536, description="decoded events shared by the followers"
    )
    # -- scaling ------------------------------------------------------------------------
    pools: list[PoolConfig] = Field(default=[], description="scaling pools")
    scaler_interval_s: float = Field(default=0.5, gt=0, le=60, description="autoscaler's pace")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError("pool names must be unique")
        if self.routing_success_weight + self.routing_speed_weight + self.routing_free_weight <= 0:
            raise ValueError("the routing weights must not all be 0")
        return self

    # -- as the parts use them ------------------------------------------------------------

    def routing(self) -> RoutingConfig:
        return RoutingConfig(
            aging=Aging(self.routing_aging_s),
            weights=Weights(
                self.routing_success_weight, self.routing_speed_weight, self.routing_free_weight
            ),
        )

    def document(self) -> str:
        """Canonical JSON text: keys sorted, no spaces (what the log stores)."""
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def of(cls, source: BaseModel) -> Knobs:
        """The knobs ``source`` (the environment's settings) carries."""
        return cls.model_validate(source.model_dump(include=set(cls.model_fields)))

    @classmethod
    def parse(cls, document: str | bytes) -> Knobs:
        return cls.model_validate_json(document)

    def with_changes(self, changes: dict[str, Any]) -> Knobs:
        """A new document: this one with ``changes`` (a dotted name per knob) applied."""
        data = self.model_dump(mode="json")
        for name, value in changes.items():
            data[name] = value
        return Knobs.model_validate(data)
