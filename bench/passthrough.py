"""S0: the raw ceiling, a plain aiokafka consume-to-produce loop (no parsing, no Faust).

Run as its own process, like the worker: it consumes the event topics in a consumer
group, produces every value unchanged to one topic with the worker's producer
settings (linger, lz4, acks=all), flushes before committing, and exits once it has
passed `--expect` records on.
"""

from __future__ import annotations

import argparse
import sys
import time

import uvloop
from aiokafka import AIOKafkaConsumer

from app.kafka.clients import producer

__all__ = ["main", "passthrough"]

COMMIT_INTERVAL = 2.8  # Faust's default commit interval, so both commit as often


async def passthrough(
    bootstrap: str, group: str, topics: list[str], out_topic: str, expect: int, linger_ms: int
) -> int:
    """Pass `expect` records from `topics` to `out_topic`; returns how many were passed."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    passed = 0
    async with producer(bootstrap, linger_ms=linger_ms, compression_type="lz4") as prod:
        await consumer.start()
        try:
            send = prod.send
            cpu = 0.0
            next_commit = time.monotonic() + COMMIT_INTERVAL
            while passed < expect:
                batches = await consumer.getmany(timeout_ms=100)
                if batches and not cpu:
                    cpu = time.process_time()
                for records in batches.values():
                    for record in records:
                        await send(out_topic, record.value, key=record.key)
                    passed += len(records)
                if time.monotonic() >= next_commit:
                    # At-least-once, as the worker: every passed record is acknowledged
                    # by Kafka before its source offset is committed.
                    await prod.flush()
                    await consumer.commit()
                    next_commit = time.monotonic() + COMMIT_INTERVAL
            await prod.flush()
            await consumer.commit()
            print(f"cpu {time.process_time() - cpu:.3f}", flush=True)
        finally:
            await consumer.stop()
    return passed


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: `python -m bench.passthrough --help`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated source topics")
    parser.add_argument("--out-topic", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--linger-ms", type=int, default=5)
    args = parser.parse_args(argv)
    passed = uvloop.run(
        passthrough(
            args.bootstrap,
            args.group,
            args.topics.split(","),
            args.out_topic,
            args.expect,
            args.linger_ms,
        )
    )
    print(f"passed {passed}", flush=True)
    return 0 if passed >= args.expect else 1


if __name__ == "__main__":
    sys.exit(main())
