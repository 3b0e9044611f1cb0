"""All configuration, read once from the environment (prefix ``HOOKSTREAM_``)."""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.dispatch_settings import DispatchSettings

__all__ = ["Settings", "get_settings", "record_size_limit"]


def record_size_limit(max_event_bytes: int) -> int:
    """Largest record the worker produces: a dead letter keeps a 2x-limit original
    (base64: 4/3 more) and a job carries its event, with 64 KiB for the envelope."""
    return 4 * max_event_bytes + 64 * 1024


# Hosts that mean "every interface": no client can connect to them by that name.
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _own_address() -> str:
    """This machine's address as its host name resolves (a pod's or container's IP)."""
    name = socket.gethostname()
    try:
        return socket.gethostbyname(name)
    except OSError:
        return name


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
    # Alias pointers kept per collection (the state record of one collection holds them
    # all); past the cap the pointers set longest ago are dropped, counted in
    # hookstream_alias_pointers_dropped_total and logged (docs/decisions.md).
    max_aliases_per_collection: int = Field(default=1000, ge=1, le=100_000)
    # The max.message.bytes assumed for a topic a `kafka` action names (Hookstream does
    # not create those): Kafka's default. A larger job is not sent ("produced no job").
    kafka_action_max_message_bytes: int = Field(default=1024 * 1024 + 12, ge=1024)

    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    # Bearer token of the management API's writes. Without one the worker serves
    # writes on loopback only and refuses to listen anywhere else (docs/api.md).
    api_token: SecretStr | None = None
    # The URL other workers reach this one at (history requests are forwarded to
    # the owner of the partition); default http://web_host:web_port, or, when web_host
    # is a wildcard such as 0.0.0.0, the address the host name resolves to (the pod
    # or container IP in Kubernetes and docker compose).
    canonical_url: str | None = None
    # The URL `hookstream automations ...` talks to; default http://web_host:web_port
    # (127.0.0.1 when web_host is a wildcard).
    api_url: str | None = None
    # How long an API write waits until this worker's rule book holds it.
    api_write_wait_seconds: float = Field(default=5.0, gt=0, le=60)
    # How long a forwarded history request may take.
    api_forward_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Executions kept per automation in the `history` table; `history_enabled=false`
    # stops the worker writing PENDING records to action-results (saves a record per job).
    history_size: int = Field(default=50, ge=1, le=1000)
    history_enabled: bool = True
    # The worker's match and job counters carry an `automation_id` label only when this is
    # on: one series per automation and action type on every worker (10,000 automations
    # made 20,000 series per worker). Per-automation counts are in the history API.
    metrics_per_automation: bool = False

    # Faust keeps table data under <data_dir>/v1/tables/<table>-<partition>.db. RocksDB
    # (rocksdict) persists it with the changelog offset it holds, so a restart reads
    # only the changelog's tail; with memory:// it re-reads every changelog from 0.
    data_dir: Path = Path(".hookstream-data")
    store: str = "rocksdb://"
    # The compacted topics (table changelogs, automations) roll a segment this often
    # or at this size, and the cleaner compacts once this share of the log is dirty:
    # Kafka's defaults (7 days, 1 GiB, 0.5) leave every record in the active segment,
    # which is never compacted, so a changelog would keep its whole history for a week.
    changelog_segment_ms: int = Field(default=10 * 60 * 1000, ge=1000)
    changelog_segment_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)
    changelog_min_cleanable_dirty_ratio: float = Field(default=0.1, gt=0.0, le=1.0)
    log_level: str = "INFO"

    # Faust's default session timeout is 60 s: a crashed worker's partitions would stand
    # still that long. 10 s (heartbeat 3 s) fails over quickly and tolerates GC pauses.
    broker_session_timeout_seconds: float = Field(default=10.0, ge=6.0, le=300.0)
    broker_heartbeat_interval_seconds: float = Field(default=3.0, gt=0.0, le=60.0)

    # Producer tuning: the agents queue a chunk's jobs together, so the producer need
    # not wait to batch them; 1 ms (was 5) measured 16 -> 10 ms median event-to-job
    # latency at 1,000 events/s and no change in catch-up throughput (docs/benchmarks.md).
    # The dispatchers' producers read it too.
    producer_linger_ms: int = Field(default=1, ge=0)
    producer_compression: str | None = "lz4"
    # Faust tuning through its public settings (app.stream.tuning; measured in
    # docs/benchmarks.md). Batch bytes per partition: aiokafka's 16 KiB default holds
    # about 20 jobs, so a catch-up sent many small requests.
    producer_max_batch_bytes: int = Field(default=256 * 1024, ge=1024)
    # Commit the acknowledged offsets after this many events or this many seconds:
    # what a crash makes the worker process again (with the same job ids).
    broker_commit_every: int = Field(default=10_000, ge=1)
    broker_commit_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # Faust's per-partition buffer of fetched records before flow control pauses it.
    stream_buffer_maxsize: int = Field(default=4096, ge=1)
    faust_cython: bool = True
    faust_lean_monitor: bool = True
    uvloop: bool = True
    # Allocations between two young-generation collections (Python's default is 700):
    # each collection pauses the event path, which showed in S3's p99 (docs/benchmarks.md).
    # 0 keeps Python's thresholds.
    gc_young_threshold: int = Field(default=50_000, ge=0)

    # Webhook ingest (docs/contract.md "Webhook ingest"): the secret each platform signs
    # its deliveries with; an endpoint without its secret refuses every delivery (401).
    ingest_mlflow_secret: SecretStr | None = None
    # MLflow has no entities or registries: its events get this entity (or the delivery's
    # `workspace`) and registry (project `wandb-registry-<registry>`).
    ingest_mlflow_entity: str = "mlflow"
    ingest_mlflow_registry: str = "mlflow"
    ingest_wandb_secret: SecretStr | None = None
    # A delivery id seen within this many seconds publishes nothing again (per worker);
    # past it the timestamp check refuses MLflow's retries anyway.
    ingest_dedup_seconds: float = Field(default=900.0, gt=0)
    # Deliveries written, in the `ingest-deliveries` table shared by the group (a retry
    # on any worker, or after a restart, publishes nothing): kept this long, and at most
    # this many per partition (the oldest go first). MLflow and W&B retry within minutes.
    ingest_deliveries_ttl_seconds: float = Field(default=86_400.0, gt=0)
    ingest_deliveries_per_partition: int = Field(default=100_000, ge=1)

    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)

    # Run events (issue 14): the topic of run.log steps and run states, and how long a
    # run's window state is kept after the run finished, failed, crashed or was killed.
    run_events_topic: str = "run-events"
    run_state_retention_seconds: float = Field(default=3600.0, ge=0)
    # Changed runs go to the run-state changelog this often (0: after every batch); their
    # batches are acked once it is acknowledged (docs/decisions.md, run events).
    run_state_flush_seconds: float = Field(default=1.0, ge=0, le=10)
    # Alias pointers reach their changelog at most this often (one record per changed
    # collection, app.stream.flushes); acknowledgements, not jobs, wait for it.
    alias_flush_seconds: float = Field(default=1.0, ge=0, le=10)

    @property
    def broker_url(self) -> str:
        """The Faust broker URL built from the bootstrap servers."""
        return ";".join(
            f"kafka://{server.strip()}"
            for server in self.kafka_bootstrap_servers.split(",")
            if server.strip()
        )

    @property
    def advertised_url(self) -> str:
        """Where other workers reach this worker's web server."""
        if self.canonical_url:
            return self.canonical_url.rstrip("/")
        host = _own_address() if self.web_host in _WILDCARD_HOSTS else self.web_host
        return f"http://{_url_host(host)}:{self.web_port}"

    @property
    def client_url(self) -> str:
        """Where the CLI reaches the management API."""
        if self.api_url:
            return self.api_url.rstrip("/")
        host = "127.0.0.1" if self.web_host in _WILDCARD_HOSTS else self.web_host
        return f"http://{_url_host(host)}:{self.web_port}"

    @property
    def max_record_bytes(self) -> int:
        """Largest record the worker produces: a dead letter keeps a 2x-limit original."""
        return record_size_limit(self.max_event_bytes)

    def event_topic(self, *, registry: bool) -> str:
        """The event topic an event goes to: registry events apart from artifact events."""
        return self.registry_events_topic if registry else self.artifact_events_topic

    @property
    def alias_pointers_topic(self) -> str:
        """Changelog of the alias-pointer table (app.stream.aliases), named as Faust does."""
        return f"{self.app_id}-alias-pointers-changelog"

    @property
    def history_changelog_topic(self) -> str:
        """Changelog of the `history` table (app.stream.history_table), named as Faust does."""
        return f"{self.app_id}-history-changelog"

    @property
    def run_state_changelog_topic(self) -> str:
        """Changelog of the run-state table (app.stream.runs), named as Faust does."""
        return f"{self.app_id}-run-state-changelog"

    @property
    def deliveries_changelog_topic(self) -> str:
        """Changelog of the ingest-deliveries table (app.stream.deliveries), as Faust names it."""
        return f"{self.app_id}-ingest-deliveries-changelog"

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
                self.alias_pointers_topic,
                self.history_changelog_topic,
                self.run_events_topic,
                self.run_state_changelog_topic,
                self.deliveries_changelog_topic,
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
