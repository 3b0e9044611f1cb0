"""Kafka helpers of the benchmark: pre-fill topics, watch end offsets, read records back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from app.kafka.clients import producer, read_to_end, topic_partitions
from bench.workload import BenchEvent

__all__ = ["OffsetWatcher", "prefill", "read_records"]


async def prefill(
    bootstrap: str, registry_topic: str, artifact_topic: str, events: Iterable[BenchEvent]
) -> int:
    """Produce the events (registry ones to `registry_topic`), acknowledged by Kafka."""
    count = 0
    async with producer(
        bootstrap, linger_ms=20, max_batch_size=512 * 1024, compression_type="lz4"
    ) as prod:
        last: list[asyncio.Future[object]] = []
        for event in events:
            topic = registry_topic if event.registry else artifact_topic
            future = await prod.send(topic, event.value, key=event.key)
            count += 1
            if count % 5000 == 0:
                last.append(future)
        await prod.flush()
        # Any failed batch surfaces here; flush alone would not raise.
        await asyncio.gather(*last)
    return count


class OffsetWatcher:
    """Sums the end offsets of topics cheaply (ListOffsets only, no records fetched)."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self._tps: dict[str, list[TopicPartition]] = {}

    async def start(self) -> None:
        """Connect."""
        await self._consumer.start()

    async def stop(self) -> None:
        """Disconnect."""
        await self._consumer.stop()

    async def total(self, topics: Sequence[str]) -> int:
        """Records in the topics now (their end offsets summed)."""
        tps: list[TopicPartition] = []
        for topic in topics:
            if topic not in self._tps:
                self._tps[topic] = await topic_partitions(self._consumer, topic)
            tps += self._tps[topic]
        ends = await self._consumer.end_offsets(tps)
        return int(sum(ends.values()))

    async def wait_for(
        self, topics: Sequence[str], expect: int, timeout: float, poll: float = 0.1
    ) -> int:
        """Poll until the topics hold `expect` records; returns what they hold."""
        deadline = time.monotonic() + timeout
        total = await self.total(topics)
        while total < expect and time.monotonic() < deadline:
            await asyncio.sleep(poll)
            total = await self.total(topics)
        return total


async def read_records(bootstrap: str, topics: Sequence[str]) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in the topics, read group-less from the beginning."""
    per_topic = await asyncio.gather(*(read_to_end(bootstrap, topic) for topic in topics))
    return [record for records in per_topic for record in records]
