"""All configuration, read once from the environment (prefix ``HOOKSTREAM_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.dispatch.config import DispatchSettings

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Hookstream settings; every topic name is configurable."""

    model_config = SettingsConfigDict(
        env_prefix="HOOKSTREAM_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    # `KAFKA_BOOTSTRAP_SERVERS` is honoured too: it is how tests and CI point at a broker.
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "HOOKSTREAM_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    app_id: str = "hookstream"

    registry_events_topic: str = "registry-events"
    artifact_events_topic: str = "artifact-events"
    automations_topic: str = "automations"
    webhook_topic: str = "actions.webhook"
    notification_topic: str = "actions.notification"
    queue_job_topic: str = "actions.queue_job"
    dlq_topic: str = "events.dlq"
    action_results_topic: str = "action-results"
    actions_dlq_topic: str = "actions.dlq"

    topic_partitions: int = Field(default=4, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)

    max_event_bytes: int = Field(default=1024 * 1024, ge=1024)

    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    api_token: SecretStr | None = None

    data_dir: Path = Path(".hookstream-data")
    store: str = "memory://"
    log_level: str = "INFO"

    # Producer tuning: a few ms of linger batches sends without hurting latency.
    producer_linger_ms: int = Field(default=5, ge=0)
    producer_compression: str | None = "lz4"

    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)

    @property
    def broker_url(self) -> str:
        """The Faust broker URL built from the bootstrap servers."""
        return ";".join(
            f"kafka://{server.strip()}"
            for server in self.kafka_bootstrap_servers.split(",")
            if server.strip()
        )

    @property
    def max_record_bytes(self) -> int:
        """Largest record the worker produces: a dead letter keeps a 2x-limit original."""
        return 4 * self.max_event_bytes + 64 * 1024

    @property
    def reserved_topics(self) -> frozenset[str]:
        """Hookstream's own topics, which a kafka action may not write to."""
        return frozenset(
            {
                self.registry_events_topic,
                self.artifact_events_topic,
                self.automations_topic,
                self.dlq_topic,
                self.action_results_topic,
                self.actions_dlq_topic,
                *self.action_topics.values(),
            }
        )

    @property
    def action_topics(self) -> dict[str, str]:
        """Action type to its default topic."""
        return {
            "webhook": self.webhook_topic,
            "notification": self.notification_topic,
            "queue_job": self.queue_job_topic,
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
