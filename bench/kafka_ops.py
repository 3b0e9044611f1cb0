"""Kafka helpers of the benchmark: pre-fill topics, watch end offsets, read records back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app.kafka.clients import producer, read_to_end, topic_partitions
from bench.workload import BenchEvent

__all__ = ["GroupLag", "OffsetWatcher", "prefill", "read_records", "wait_total"]


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


class GroupLag:
    """Consumer lag of a worker on its source topics: end offsets minus committed offsets.

    The worker's group is not named here (Faust's group is the app id; an earlier engine
    used `<app id>-engine`): of the groups whose id starts with `group_prefix`, the one
    that has committed the most on the topics is the worker's. That is the lag that
    `kafka-consumer-groups --describe` shows.
    """

    def __init__(self, bootstrap: str, topics: Sequence[str], group_prefix: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._topics = list(topics)
        self._prefix = group_prefix
        self._tps: list[TopicPartition] = []

    async def start(self) -> None:
        """Connect and look the topics' partitions up."""
        await self._consumer.start()
        await self._admin.start()
        for topic in self._topics:
            self._tps += await topic_partitions(self._consumer, topic)

    async def stop(self) -> None:
        """Disconnect."""
        await self._consumer.stop()
        await self._admin.close()

    async def sample(self) -> tuple[int, int]:
        """(records in the topics, records the worker's group has committed) right now."""
        # Committed offsets first, end offsets second: the lag is never below zero.
        groups = [g[0] for g in await self._admin.list_consumer_groups()]
        committed = 0
        for group in groups:
            if not str(group).startswith(self._prefix):
                continue
            offsets = await self._admin.list_consumer_group_offsets(group, partitions=self._tps)
            done = sum(max(meta.offset, 0) for meta in offsets.values() if meta is not None)
            committed = max(committed, done)
        ends = await self._consumer.end_offsets(self._tps)
        return int(sum(ends.values())), committed


async def read_records(bootstrap: str, topics: Sequence[str]) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in the topics, read group-less from the beginning."""
    per_topic = await asyncio.gather(*(read_to_end(bootstrap, topic) for topic in topics))
    return [record for records in per_topic for record in records]


async def wait_total(bootstrap: str, topics: list[str], expect: int, timeout: float) -> int:
    """Wait until the topics hold `expect` records; returns how many they hold."""
    watcher = OffsetWatcher(bootstrap)
    await watcher.start()
    try:
        return await watcher.wait_for(topics, expect, timeout, poll=0.05)
    finally:
        await watcher.stop()
