"""`hookstream tail`: watch a topic."""

from __future__ import annotations

import sys
import time

from app import serialization
from app.kafka.clients import log_reader, rewind, topic_partitions
from app.settings import Settings

__all__ = ["tail"]


async def tail(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    max_records: int | None = None,
    timeout: float | None = None,
) -> int:
    """Print each record as `key<TAB>json`; stop after max_records or timeout idle seconds."""
    consumer = await log_reader(settings.kafka_bootstrap_servers, client_id="hookstream-tail")
    seen = 0
    try:
        tps = await topic_partitions(consumer, topic)
        await rewind(consumer, tps)
        if not from_beginning:
            await consumer.seek_to_end(*tps)
        idle_since = time.monotonic()
        while max_records is None or seen < max_records:
            batches = await consumer.getmany(timeout_ms=200)
            if not batches and timeout is not None and time.monotonic() - idle_since > timeout:
                break
            for records in batches.values():
                for record in records:
                    idle_since = time.monotonic()
                    key = (record.key or b"").decode("utf-8", "replace")
                    try:
                        value = serialization.dumps_str(
                            serialization.loads(record.value or b"null")
                        )
                    except serialization.JSONDecodeError:
                        value = repr(record.value)
                    sys.stdout.write(f"{key}\t{value}\n")
                    sys.stdout.flush()
                    seen += 1
    finally:
        await consumer.stop()
    return 0
