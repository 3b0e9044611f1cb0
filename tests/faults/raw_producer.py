"""Write records of any bytes, header keys included, as a Kafka producer can.

aiokafka's producer takes header keys as ``str`` and encodes them as UTF-8, so it cannot
write a key that is not UTF-8, which Kafka accepts from other clients. Its pure-Python
record builder (``AIOKAFKA_NO_EXTENSIONS=1``) encodes a key by calling ``encode`` on it,
so a ``str`` subclass that returns the raw bytes writes them as they are. That needs
the variable set before aiokafka is imported: `produce_raw` runs this module in a child
process.

    AIOKAFKA_NO_EXTENSIONS=1 python -m tests.faults.raw_producer BOOTSTRAP IN.jsonl OUT.jsonl

Each input line is ``{"topic", "key", "value", "headers": [[key, value], ...]}`` with
every bytes field in base64 (or null); each output line is ``[partition, offset]``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Self

from app import serialization

__all__ = ["RawRecord", "produce_raw"]

RawRecord = tuple[str, bytes | None, bytes | None, list[tuple[bytes, bytes | None]]]


class _RawKey(str):
    """A header key whose UTF-8 encoding is the given bytes, whatever they are."""

    raw: bytes

    def __new__(cls, raw: bytes) -> Self:
        made = super().__new__(cls, raw.decode("utf-8", "replace"))
        made.raw = raw
        return made

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """The raw bytes (the pure-Python record builder writes what this returns)."""
        return self.raw


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def produce_raw(bootstrap: str, records: list[RawRecord], tmp: Path) -> list[tuple[int, int]]:
    """Write the records (topic, key, value, headers) in order; their (partition, offset)."""
    source = tmp / "raw-records.jsonl"
    out = tmp / "raw-offsets.jsonl"
    source.write_bytes(
        b"\n".join(
            serialization.dumps(
                {
                    "topic": topic,
                    "key": _b64(key),
                    "value": _b64(value),
                    "headers": [[_b64(k), _b64(v)] for k, v in headers],
                }
            )
            for topic, key, value, headers in records
        )
    )
    env = {**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.faults.raw_producer", bootstrap, str(source), str(out)],
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return [tuple(serialization.loads(line)) for line in out.read_bytes().splitlines()]


async def _send(bootstrap: str, lines: list[bytes]) -> list[tuple[int, int]]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.util import NO_EXTENSIONS

    assert NO_EXTENSIONS, "run with AIOKAFKA_NO_EXTENSIONS=1"
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=64 * 1024 * 1024,
    )
    await producer.start()
    try:
        futures = []
        for line in lines:
            item: dict[str, Any] = serialization.loads(line)
            headers = [(_RawKey(_unb64(k) or b""), _unb64(v)) for k, v in item["headers"]]
            futures.append(
                await producer.send(
                    item["topic"],
                    key=_unb64(item["key"]),
                    value=_unb64(item["value"]),
                    headers=headers,
                )
            )
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


def _main(bootstrap: str, source: Path, out: Path) -> None:
    metas = asyncio.run(_send(bootstrap, source.read_bytes().splitlines()))
    out.write_bytes(b"\n".join(serialization.dumps(list(meta)) for meta in metas))


if __name__ == "__main__":
    _main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
