"""The last records of a topic: what the console shows of the dead-letter topic."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from app.kafka.clients import topic_partitions

__all__ = ["read_recent"]


async def read_recent(
    bootstrap: str, topic: str, limit: int, *, timeout: float = 5.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Up to `limit` newest records of `topic` (by record timestamp, newest first).

    Group-less: each partition is read from `limit` records before its end, so the
    cost is bounded by `limit` per partition whatever the topic holds.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout * 1000),
    )
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > begin[tp]}
        for tp in pending:
            consumer.seek(tp, max(begin[tp], end[tp] - limit))
        records: list[ConsumerRecord[bytes, bytes]] = []
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=int(timeout * 1000))
            if not batches:
                break  # nothing came within the timeout: show what was read
            for batch in batches.values():
                records.extend(batch)
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset), reverse=True)
        return records[:limit]
    finally:
        await consumer.stop()
