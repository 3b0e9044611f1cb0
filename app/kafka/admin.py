"""Create the topics Hookstream reads and writes, idempotently."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.core.limits import RecordLimits
from app.core.topics import DispatchKind, dispatch_topics
from app.errors import ConfigError
from app.settings import Settings

__all__ = [
    "TopicSpec",
    "check_automations_topic",
    "dispatch_topic_specs",
    "ensure_topics",
    "record_limits",
    "topic_specs",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: name, partitions and topic configs."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic of the contract, sized from settings."""
    n = settings.topic_partitions
    # Faust declares a table's changelog itself when it is missing, with only
    # cleanup.policy=compact (Collection._new_changelog_topic, compacting=True), and
    # leaves an existing topic alone; run_worker calls ensure_topics before Faust
    # starts, so these configs are the ones the changelogs get.
    compacted = {
        "cleanup.policy": "compact",
        # A record may be compacted as soon as its segment is closed.
        "min.compaction.lag.ms": "0",
        # Close segments often enough that the cleaner gets to them (the active segment
        # is never compacted), and clean once a tenth of the log is superseded.
        "segment.ms": str(settings.changelog_segment_ms),
        "segment.bytes": str(settings.changelog_segment_bytes),
        "min.cleanable.dirty.ratio": str(settings.changelog_min_cleanable_dirty_ratio),
    }
    names = [
        settings.registry_events_topic,
        settings.artifact_events_topic,
        settings.webhook_topic,
        settings.notification_topic,
        settings.queue_job_topic,
        settings.dlq_topic,
        settings.action_results_topic,
        settings.actions_dlq_topic,
    ]
    # Every topic takes the largest record the worker (or a dispatcher) sends: a job
    # carries its event, a dead letter its original in base64, a state record up to
    # max_aliases_per_collection pointers; a stock broker's 1 MiB would refuse them and
    # stop the worker. Event topics take oversized events too, so that they reach the
    # dead-letter topic with a reason instead of a bare broker refusal.
    limit = {"max.message.bytes": str(settings.max_record_bytes)}
    specs = [TopicSpec(name, n, dict(limit)) for name in names]
    # The automations topic is the changelog of the automations GlobalTable: compacted,
    # so it keeps the latest automation per id and a tombstone deletes one, and one
    # partition, which a GlobalTable needs with several workers (faust-streaming #283).
    specs.append(TopicSpec(settings.automations_topic, 1, dict(compacted)))
    # Table changelogs, partitioned like the topics they sit beside: alias pointers
    # (one record per collection, on the partition of its events) and history.
    specs.append(TopicSpec(settings.alias_pointers_topic, n, {**compacted, **limit}))
    specs.append(TopicSpec(settings.history_changelog_topic, n, {**compacted, **limit}))
    # Run events (issue 14): the run-events topic (oversized records included, as for
    # the other event topics) and the run-state table's changelog.
    specs.append(TopicSpec(settings.run_events_topic, n, dict(limit)))
    specs.append(TopicSpec(settings.run_state_changelog_topic, n, {**compacted, **limit}))
    # Webhook deliveries written (issue 17): an entry is of no use past its expiry, so
    # the broker deletes what is older too (the worker's purge sends tombstones sooner).
    retention = str(int(settings.ingest_deliveries_ttl_seconds * 1000))
    expiring = {**compacted, "cleanup.policy": "compact,delete", "retention.ms": retention}
    specs.append(TopicSpec(settings.deliveries_changelog_topic, n, expiring))
    return specs


def dispatch_topic_specs(settings: Settings) -> list[TopicSpec]:
    """Retry-tier and state topics of the webhook and notification dispatchers."""
    n = settings.topic_partitions
    retention_ms = str(int(settings.dispatch.dedup_retention_seconds * 1000))
    # Dedup entries are only needed for the retention window: compact keeps the latest
    # status per job id, delete drops ids older than the window.
    dedup = {"cleanup.policy": "compact,delete", "retention.ms": retention_ms}
    gone = {"cleanup.policy": "compact"}
    # A retry record carries the whole job, as large as the action topic takes.
    limit = {"max.message.bytes": str(settings.max_record_bytes)}
    specs: list[TopicSpec] = []
    kinds: tuple[DispatchKind, ...] = ("webhook", "notification")
    for kind in kinds:
        topics = dispatch_topics(settings, kind)
        specs.extend(TopicSpec(name, n, dict(limit)) for name in topics.retries)
        specs.append(TopicSpec(topics.dedup, n, dedup))
        specs.append(TopicSpec(topics.gone, n, gone))
    return specs


async def ensure_topics(settings: Settings, extra: list[TopicSpec] | None = None) -> list[str]:
    """Create missing topics; return the names created (existing ones are left alone)."""
    # An extra spec replaces the default one of the same name.
    by_name = {spec.name: spec for spec in (*topic_specs(settings), *(extra or ()))}
    specs = list(by_name.values())
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.app_id}-admin",
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=s.configs,
            )
            for s in missing
        ]
        response = await admin.create_topics(new)
        created = []
        for name, code, *_ in getattr(response, "topic_errors", []):
            # 36 = TOPIC_ALREADY_EXISTS: another worker won the race, which is fine.
            if code in (0, 36):
                created.append(name)
            else:
                log.error("creating topic %s failed with error code %s", name, code)
        return created
    finally:
        await admin.close()


async def check_automations_topic(settings: Settings) -> None:
    """Refuse an automations topic of more than one partition (a GlobalTable's changelog)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.app_id}-admin",
    )
    await admin.start()
    try:
        # A topic created a moment ago may not be described yet (no partitions listed).
        for _ in range(50):
            (topic,) = await admin.describe_topics([settings.automations_topic])
            count = len(topic.get("partitions") or ())
            if topic.get("error_code") == 0 and count:
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    if count > 1:
        raise ConfigError(
            f"the automations topic {settings.automations_topic!r} has {count} "
            "partitions; the automations GlobalTable needs exactly one "
            "(faust-streaming #283): see docs/decisions.md, 'Upgrading from the engine'"
        )


async def record_limits(settings: Settings) -> RecordLimits:
    """The worker's record limits, with each written topic's `max.message.bytes` as it is.

    A topic made before Hookstream set the limit (or by hand) may take less than
    `Settings.max_record_bytes`; the worker then sizes its records to what the topic
    takes instead of having the broker refuse one and stopping. A topic the broker
    does not describe keeps the limit it is created with.
    """
    limits = RecordLimits.from_settings(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.app_id}-admin",
    )
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, configs={"max.message.bytes": None})
        for name in limits.topics
    ]
    try:
        await admin.start()
        responses = await admin.describe_configs(resources)
    except Exception as exc:  # e.g. no DescribeConfigs permission: the created limits stand
        log.warning(
            "reading the topics' max.message.bytes failed (%r); assuming %d", exc, limits.producer
        )
        return limits
    finally:
        await admin.close()
    found: dict[str, int] = {}
    for response in responses:
        for item in response.to_object()["resources"]:
            if item.get("error_code"):
                continue
            for entry in item["config_entries"]:
                if entry["config_names"] == "max.message.bytes" and entry["config_value"]:
                    found[item["resource_name"]] = int(entry["config_value"])
    smaller = {name: n for name, n in found.items() if n < settings.max_record_bytes}
    for name, n in sorted(smaller.items()):
        log.warning(
            "topic %s takes records of at most %d bytes (max.message.bytes), less than the "
            "%d Hookstream creates it with: larger records for it are not sent",
            name,
            n,
            settings.max_record_bytes,
        )
    return limits.with_topics(found)
