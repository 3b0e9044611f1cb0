"""Topic creation and the checks the worker makes of existing topics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from app.core.limits import RecordLimits
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.errors import ConfigError
from app.kafka.admin import TopicSpec, check_automations_topic, ensure_topics, record_limits
from tests.factories import event_bytes, make_automation
from tests.support import eventually, isolated_settings


async def _partitions(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return len(described["partitions"])


def test_automations_topic_is_created_with_one_partition(
    kafka_bootstrap: str, uid: str, tmp_path: Path
) -> None:
    """ensure_topics gives the automations GlobalTable's changelog exactly one partition."""
    settings = isolated_settings(kafka_bootstrap, uid, tmp_path)
    asyncio.run(ensure_topics(settings))
    assert asyncio.run(_partitions(kafka_bootstrap, settings.automations_topic)) == 1
    assert asyncio.run(_partitions(kafka_bootstrap, settings.alias_pointers_topic)) == 4
    asyncio.run(check_automations_topic(settings))


def test_a_wider_automations_topic_is_refused_with_the_reason(
    kafka_bootstrap: str, uid: str, tmp_path: Path
) -> None:
    """An automations topic of 3 partitions (a pre-GlobalTable deployment) is refused."""
    settings = isolated_settings(kafka_bootstrap, uid, tmp_path)
    asyncio.run(ensure_topics(settings, [TopicSpec(settings.automations_topic, 3)]))
    with pytest.raises(ConfigError, match=r"has 3 partitions.*exactly one.*#283"):
        asyncio.run(check_automations_topic(settings))


def test_the_worker_sizes_records_to_an_existing_topics_smaller_limit(
    kafka_bootstrap: str, uid: str, tmp_path: Path
) -> None:
    """Issue 18: a topic made with a smaller max.message.bytes is read; a larger job is not sent."""
    settings = isolated_settings(kafka_bootstrap, uid, tmp_path)
    small = 600_000
    asyncio.run(
        ensure_topics(
            settings, [TopicSpec(settings.webhook_topic, 4, {"max.message.bytes": str(small)})]
        )
    )

    # A topic created a moment ago may not be described yet: until then the limit it
    # is created with stands.
    def described() -> RecordLimits | None:
        found = asyncio.run(record_limits(settings))
        return found if found.limit(settings.webhook_topic) == small else None

    limits = eventually(described, timeout=30)
    assert limits.limit(settings.webhook_topic) == small
    assert limits.limit(settings.dlq_topic) == settings.max_record_bytes
    pipeline = Pipeline.from_settings(AutomationIndex([make_automation()]), settings, limits=limits)
    raw = event_bytes(artifact={"metadata": {"blob": "b" * 700_000}})
    result = pipeline.process(raw, aliases=MemoryAliasStore(), source=SourceInfo("t"))
    assert result.outbounds == []
    ((_, reason),) = result.failures
    assert f"max.message.bytes {small}" in reason
