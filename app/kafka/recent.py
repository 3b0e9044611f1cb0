"""The newest records of a topic: what the console shows of the dead-letter topic."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from app.kafka.clients import behind, log_reader, topic_partitions

__all__ = ["read_recent"]


async def read_recent(
    bootstrap: str, topic: str, limit: int, *, timeout: float = 5.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Up to `limit` newest records of `topic` (by record timestamp, newest first).

    Each partition is read from `limit` records before its end, so the cost is bounded
    by `limit` per partition whatever the topic holds.
    """
    consumer = await log_reader(
        bootstrap, client_id="hookstream-console", request_timeout_ms=int(timeout * 1000)
    )
    try:
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        begin: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(begin[tp], ends[tp] - limit))
        records: list[ConsumerRecord[bytes, bytes]] = []
        while pending := await behind(consumer, ends):
            batches = await consumer.getmany(*pending, timeout_ms=int(timeout * 1000))
            if not batches:
                break  # nothing came within the timeout: show what was read
            for batch in batches.values():
                records.extend(batch)
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset), reverse=True)
        return records[:limit]
    finally:
        await consumer.stop()
