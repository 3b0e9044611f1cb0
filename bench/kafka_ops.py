"""Kafka helpers of the benchmark: pre-fill topics, watch end offsets, read records back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.kafka_io import topic_partitions
from bench.workload import BenchEvent

__all__ = ["OffsetWatcher", "Record", "prefill", "read_records"]


async def prefill(
    bootstrap: str, registry_topic: str, artifact_topic: str, events: Iterable[BenchEvent]
) -> int:
    """Produce the events (registry ones to `registry_topic`), acknowledged by Kafka."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
        compression_type="lz4",
    )
    await producer.start()
    count = 0
    try:
        last: list[asyncio.Future[object]] = []
        for event in events:
            topic = registry_topic if event.registry else artifact_topic
            future = await producer.send(topic, event.value, key=event.key)
            count += 1
            if count % 5000 == 0:
                last.append(future)
        await producer.flush()
        # Any failed batch surfaces here; flush alone would not raise.
        await asyncio.gather(*last)
    finally:
        await producer.stop()
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


@dataclass(frozen=True, slots=True)
class Record:
    """One record read back: where, when (CreateTime ms) and what."""

    topic: str
    partition: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


async def read_records(bootstrap: str, topics: Sequence[str]) -> list[Record]:
    """Every record currently in the topics, read group-less from the beginning."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps: list[TopicPartition] = []
        for topic in topics:
            tps += await topic_partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Record] = []
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                out.extend(
                    Record(tp.topic, tp.partition, r.timestamp, r.key, r.value) for r in records
                )
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        return out
    finally:
        await consumer.stop()
