"""aiokafka helpers for the dispatchers, the CLI and tests: produce, partitions, read to end."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition, codec
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient

from app.errors import HookstreamError
from app.settings import Settings

__all__ = [
    "RebalanceForwarder",
    "action_producer",
    "behind",
    "compression",
    "log_reader",
    "partitions_of",
    "produce",
    "producer",
    "read_to_end",
    "rewind",
    "topic_partitions",
]

log = logging.getLogger(__name__)

_CODECS = {
    "gzip": codec.has_gzip,
    "snappy": codec.has_snappy,
    "lz4": codec.has_lz4,
    "zstd": codec.has_zstd,
}


def compression(name: str | None) -> str | None:
    """The configured codec, or none when its library is missing (aiokafka needs cramjam)."""
    if name is None or _CODECS.get(name, lambda: True)():
        return name
    log.warning("compression %s unavailable (install cramjam); producing uncompressed", name)
    return None


OnRebalance = Callable[[set[TopicPartition]], Awaitable[None]]


class RebalanceForwarder(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Forwards aiokafka's rebalance callbacks (which it awaits) to two coroutines."""

    def __init__(self, on_revoked: OnRebalance, on_assigned: OnRebalance) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Partitions about to be taken away."""
        await self._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Partitions given to this member."""
        await self._on_assigned(set(assigned))


def action_producer(
    settings: Settings, client_id: str, *, max_request_size: int | None = None
) -> AIOKafkaProducer:
    """The idempotent producer of a worker or dispatcher (acks=all, linger, compression)."""
    extra = {} if max_request_size is None else {"max_request_size": max_request_size}
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.producer_linger_ms,
        compression_type=compression(settings.producer_compression),
        **extra,
    )


@asynccontextmanager
async def producer(bootstrap: str, **kwargs: object) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer with acks=all, stopped (and flushed) on exit."""
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **kwargs)
    await prod.start()
    try:
        yield prod
    finally:
        await prod.stop()


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    *,
    max_request_size: int = 1024 * 1024,
) -> int:
    """Send (key, value) records and wait until Kafka acknowledges all of them."""
    async with producer(bootstrap, max_request_size=max_request_size) as prod:
        futures = [await prod.send(topic, key=key, value=value) for key, value in records]
        await asyncio.gather(*futures)
    return len(futures)


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of a topic; raises when the topic does not exist."""
    for _ in range(50):
        # aiokafka has no public call that refreshes metadata for a manually assigned
        # topic; the client's full metadata fetch is the reliable way.
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(topic)
        if partitions:
            return [TopicPartition(topic, p) for p in sorted(partitions)]
        await asyncio.sleep(0.1)
    raise HookstreamError(f"topic {topic!r} does not exist")


async def log_reader(
    bootstrap: str, *, client_id: str = "hookstream-reader", **config: Any
) -> AIOKafkaConsumer:
    """A started group-less consumer that commits nothing: the reader of a whole log.

    The automations topic and the dispatchers' state topics are read whole by every
    process, `tail` and the tests read topics back; `rewind` assigns it partitions.
    `config` is passed to aiokafka (fetch sizes). The caller stops it.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=client_id,
        **config,
    )
    await consumer.start()
    return consumer


async def rewind(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
    """Assign `tps` to a group-less consumer and position it at their beginning."""
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)


async def behind(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> set[TopicPartition]:
    """The partitions whose position has not reached the given end offsets yet."""
    return {tp for tp, end in ends.items() if await consumer.position(tp) < end}


async def read_to_end(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in a topic, read group-less from the start."""
    consumer = await log_reader(bootstrap)
    try:
        tps = await topic_partitions(consumer, topic)
        if not tps:
            return []
        await rewind(consumer, tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while pending := await behind(consumer, ends):
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def partitions_of(
    bootstrap: str, topics: list[str], *, wait: float = 30.0
) -> list[TopicPartition]:
    """Every partition of the topics, once each has a leader; HookstreamError if one is missing."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="hookstream-describe")
    await admin.start()
    deadline = time.monotonic() + wait
    try:
        while True:
            described: list[dict[str, Any]] = await admin.describe_topics(topics)
            found: list[TopicPartition] = []
            missing: list[str] = []
            for topic in described:
                parts = topic.get("partitions") or []
                if topic.get("error_code") or not parts or any(p["leader"] < 0 for p in parts):
                    missing.append(str(topic.get("topic")))
                    continue
                found.extend(TopicPartition(topic["topic"], p["partition"]) for p in parts)
            if not missing:
                return sorted(found)
            if time.monotonic() > deadline:
                raise HookstreamError(f"topics without partitions: {', '.join(missing)}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
