"""A hive process's settings, from ``APIARY_*`` environment variables (one place)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.config import Knobs
from runtime.scaling.pools import PoolConfig


class Settings(BaseSettings, Knobs):
    """What a process needs before it can read the log (the database, where to listen,
    its home), and the knobs (``runtime.config.Knobs``, same names) that seed the first
    version of the runtime configuration in a new hive. Once the hive has a config, the
    knobs in force are the log's: ``Node.settings_now()`` is this with them applied."""

    model_config = SettingsConfigDict(env_prefix="APIARY_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="libpq URL; unset = an embedded PostgreSQL under `home`"
    )
    home: Path = Field(default=Path(".apiary"), description="local state: embedded db, keys")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    poll_interval_s: float = Field(default=1.0, gt=0, description="safety-net poll of the log")

    db_pool_size: int = Field(default=10, ge=1)
    db_connect_timeout_s: int = Field(default=2, ge=1)
    db_lock_timeout_s: int = Field(default=5, ge=1)
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After on 503")

    # The door (api/door.py): what a connection must do before any key is checked.
    max_head_bytes: int = Field(
        default=16 * 1024, ge=1024, le=1024 * 1024, description="request line + headers (431)"
    )
    max_headers: int = Field(default=100, ge=10, le=1000, description="headers per request (431)")
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="a request head must be complete within this"
    )
    keep_alive_s: int = Field(default=5, ge=1, le=300, description="an idle connection is closed")
    max_connections: int | None = Field(
        default=None, ge=1, description="open connections and requests at once; over it, 503"
    )

    pools_file: Path | None = Field(default=None, description="scaling pools, as TOML")
    hive_url: str | None = Field(
        default=None, description="where launched bots reach the API (default: host:port)"
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="proxies trusted to say a request's scheme and client address "
        "(X-Forwarded-Proto, X-Forwarded-For): comma-separated IPs or networks, or '*'; "
        "unset = none (those headers are ignored)",
    )

    @model_validator(mode="after")
    def _load_pools(self) -> Self:
        if self.pools_file is not None:
            with self.pools_file.open("rb") as f:
                table = tomllib.load(f)
            extra = [PoolConfig.model_validate(p) for p in table.get("pool", [])]
            object.__setattr__(self, "pools", [*self.pools, *extra])
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError("pool names must be unique")
        return self
