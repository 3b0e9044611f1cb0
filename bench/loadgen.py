"""S3 load: events at a steady rate, each stamped with `occurred_at` just before it is sent."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time

import uvloop

from app.kafka.clients import producer
from bench.workload import BenchEvent, Versions, bench_event, event_dict, now_iso

__all__ = ["main", "steady"]

TICK = 0.005  # seconds between bursts: 5 events per tick at 1,000/s


def _templates(count: int, prefix: str) -> list[BenchEvent]:
    """`count` events whose JSON holds a placeholder `occurred_at`."""
    rng = random.Random(11)
    versions = Versions()
    return [
        bench_event(event_dict(rng, index, prefix, versions, _PLACEHOLDER))
        for index in range(count)
    ]


# Replaced in the rendered bytes by the time of sending (the JSON stays valid).
_PLACEHOLDER = "0000-00-00T00:00:00.000000Z"


async def steady(
    bootstrap: str, registry_topic: str, artifact_topic: str, rate: int, seconds: float, prefix: str
) -> int:
    """Send `rate` events per second for `seconds`; returns how many were sent."""
    total = int(rate * seconds)
    # Rendered before the clock starts, so that the generator's own cost stays low.
    templates = _templates(total, prefix)
    placeholder = _PLACEHOLDER.encode()
    sent = 0
    async with producer(bootstrap, linger_ms=0) as prod:
        started = time.monotonic()
        while sent < total:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            while sent < due:
                event = templates[sent]
                stamped = event.value.replace(placeholder, now_iso().encode(), 1)
                topic = registry_topic if event.registry else artifact_topic
                await prod.send(topic, stamped, key=event.key)
                sent += 1
            await asyncio.sleep(TICK)
        await prod.flush()
    return sent


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: `python -m bench.loadgen --help`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry-topic", required=True)
    parser.add_argument("--artifact-topic", required=True)
    parser.add_argument("--rate", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args(argv)
    sent = uvloop.run(
        steady(
            args.bootstrap,
            args.registry_topic,
            args.artifact_topic,
            args.rate,
            args.seconds,
            args.prefix,
        )
    )
    print(f"sent {sent}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
