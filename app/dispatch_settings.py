"""Settings of the dispatchers, nested into the main Settings as `dispatch`."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, field_validator, model_validator

__all__ = ["ARTIFACT_URL_VARIABLES", "DispatchSettings"]

#: Variables allowed in `artifact_url_template` (contract names; values are URL-quoted).
ARTIFACT_URL_VARIABLES = frozenset(
    {
        "entity_name",
        "project_name",
        "registry_name",
        "artifact_collection_name",
        "artifact_type",
        "artifact_version",
        "artifact_version_string",
    }
)

_VARIABLE = re.compile(r"\$\{([^}]*)\}")

_DAY = 24 * 3600.0


class DispatchSettings(BaseModel):
    """Delivery settings (env `HOOKSTREAM_DISPATCH__<FIELD>`; lists as JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Per attempt: connect + send + response headers + (truncated) body.
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    # Retry policy: whichever limit is hit first ends the retries.
    max_attempts: int = Field(default=8, ge=1, le=100)
    max_age_seconds: float = Field(default=_DAY, gt=0)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=3600.0, gt=0)

    # Network policy (SSRF guard); see app/dispatch/netguard.py.
    allow_http: bool = False
    allow_private_networks: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_networks: tuple[IPvAnyNetwork, ...] = ()
    # Development only (`make run` sets it): loopback addresses are admitted, and
    # http:// too when the URL's host is loopback (an IP literal or `localhost`), so the
    # example automations reach `hookstream listen`; every other target keeps the rules.
    allow_loopback: bool = False

    # Secret source: files in `secrets_dir` first, then env `<secrets_env_prefix><NAME>`.
    secrets_dir: Path | None = None
    secrets_env_prefix: str = "HOOKSTREAM_SECRET_"

    dedup_retention_seconds: float = Field(default=7 * _DAY, gt=0)
    response_body_limit_bytes: int = Field(default=4096, ge=0, le=1024 * 1024)

    # Connection pool of the one shared session; the per-host cap keeps one slow
    # endpoint from taking every connection.
    max_connections: int = Field(default=100, ge=1)
    max_connections_per_host: int = Field(default=10, ge=0)

    # Tiered retry topics `<action topic><retry_topic_suffix>` ({tier} = e.g. "30s").
    retry_tiers_seconds: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 3600.0)
    retry_topic_suffix: str = ".retry.{tier}"

    # Compacted state topics of the consumer-group service: `<action topic><suffix>`.
    dedup_topic_suffix: str = ".dedup"
    gone_topic_suffix: str = ".gone"

    # Consumer-group service: jobs of one partition delivered at once (a slow endpoint
    # holds one slot, not the partition), how often finished offsets are committed, and
    # how long a revoked or stopping partition may finish its in-flight attempts.
    max_in_flight_per_partition: int = Field(default=16, ge=1, le=1000)
    commit_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    drain_seconds: float = Field(default=15.0, ge=0, le=600)
    # How long a crashed instance keeps its partitions before the group reassigns them.
    session_timeout_seconds: float = Field(default=10.0, ge=1, le=300)

    # Slack: link to the artifact version, e.g.
    # "https://wandb.ai/${entity_name}/${project_name}/artifacts/${artifact_type}/
    #  ${artifact_collection_name}/${artifact_version}". None: plain text only.
    artifact_url_template: str | None = None

    @field_validator("allowed_hosts")
    @classmethod
    def _normalise_hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        """Lower-case hosts and drop trailing dots so matching is exact."""
        cleaned = tuple(host.strip().lower().rstrip(".") for host in hosts)
        for host in cleaned:
            name = host.removeprefix("*.")
            if not name or "*" in name or any(c in name for c in "/@ \t"):
                raise ValueError(f"allowed_hosts: {host!r} is not a host name or '*.suffix'")
        return cleaned

    @field_validator("retry_tiers_seconds")
    @classmethod
    def _check_tiers(cls, tiers: tuple[float, ...]) -> tuple[float, ...]:
        """Tiers must be positive, strictly increasing and at least one."""
        if not tiers:
            raise ValueError("at least one retry tier is needed")
        if any(t <= 0 for t in tiers) or any(b <= a for a, b in itertools.pairwise(tiers)):
            raise ValueError("retry tiers must be positive and strictly increasing")
        return tiers

    @field_validator("retry_topic_suffix")
    @classmethod
    def _check_suffix(cls, suffix: str) -> str:
        """The suffix must name the tier, or every tier would share one topic."""
        if "{tier}" not in suffix:
            raise ValueError("retry_topic_suffix must contain '{tier}'")
        return suffix

    @field_validator("artifact_url_template")
    @classmethod
    def _check_template(cls, template: str | None) -> str | None:
        """Only known variables, and the result must be an http(s) URL."""
        if template is None or not template.strip():
            return None
        unknown = sorted(set(_VARIABLE.findall(template)) - ARTIFACT_URL_VARIABLES)
        if unknown:
            raise ValueError(f"unknown variables in artifact_url_template: {', '.join(unknown)}")
        if not template.startswith(("https://", "http://")):
            raise ValueError("artifact_url_template must start with https:// or http://")
        return template

    @model_validator(mode="after")
    def _check_backoff(self) -> Self:
        """The backoff cap cannot be below its base."""
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_max_seconds must be >= backoff_base_seconds")
        return self

    @field_validator("dedup_topic_suffix", "gone_topic_suffix")
    @classmethod
    def _check_state_suffix(cls, suffix: str) -> str:
        """A state topic must differ from its action topic."""
        if not suffix:
            raise ValueError("a state topic suffix cannot be empty")
        return suffix

    def retry_topic(self, action_topic: str, tier_seconds: float) -> str:
        """The retry topic of one tier, e.g. `actions.webhook.retry.30s`."""
        return action_topic + self.retry_topic_suffix.format(tier=f"{tier_seconds:g}s")
