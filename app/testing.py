"""Fakes for testing code around Hookstream without Kafka, like `structlog.testing`.

- `RecordingSend`: stands in for the event path's `send` (the worker's producer):
  records every record queued and returns a future the test resolves, or resolves it
  at once with `auto_ack=True`.
- `RecordingWrites`: stands in for the API's `send` (automation writes and HTTP ingest,
  `define_api(..., send=)`): records each record, gives it the next offset of its topic
  and calls `on_write`, where a test plays the worker reading it back (e.g. a
  `RuleBook`'s `apply` and `advance`), or fails the write with `fail`.
- `MemoryAliasStore`: the in-memory alias pointers `evaluate` uses (re-exported).
- `run_events`: event bytes through a `Pipeline`, as the worker's agent runs them.

Nothing here imports Faust or aiokafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.contract.automations import Automation
from app.core.matching import AutomationIndex
from app.core.pipeline import AliasStore, MemoryAliasStore, Pipeline, ProcessResult, SourceInfo
from app.settings import Settings

__all__ = [
    "MemoryAliasStore",
    "RecordingSend",
    "RecordingWrites",
    "SentRecord",
    "Write",
    "pipeline_for",
    "run_events",
]


@dataclass
class SentRecord:
    """One record queued through a `RecordingSend`, with the future standing for Kafka's ack."""

    topic: str
    value: bytes
    key: bytes | None
    headers: Any
    future: asyncio.Future[Any]


class RecordingSend:
    """A `send(topic, value, key, headers)` that records instead of producing.

    With `auto_ack` each future is resolved at once (Kafka acknowledged every
    record); without, the test resolves `records[i].future` itself, or fails it.
    """

    def __init__(self, *, auto_ack: bool = False) -> None:
        self.auto_ack = auto_ack
        self.records: list[SentRecord] = []

    async def __call__(
        self, topic: str, value: bytes, key: bytes | None, headers: Any
    ) -> asyncio.Future[Any]:
        """Queue one record; nothing is delivered anywhere."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.auto_ack:
            future.set_result(None)
        self.records.append(SentRecord(topic, value, key, headers, future))
        return future

    def to(self, topic: str) -> list[SentRecord]:
        """The records queued for one topic."""
        return [r for r in self.records if r.topic == topic]


@dataclass(frozen=True)
class Write:
    """One record written through a `RecordingWrites`, with the place Kafka gave it."""

    topic: str
    key: bytes
    value: bytes | None
    partition: int
    offset: int
    headers: tuple[tuple[str, bytes], ...] = ()


class RecordingWrites:
    """A `send(topic, key, value) -> (partition, offset)` that records instead of producing.

    Every record lands on partition 0 of its topic at the next offset. `on_write` runs
    before the send returns (the ack); `fail`, when set, is raised instead (Kafka down).
    """

    def __init__(self, on_write: Callable[[Write], None] | None = None) -> None:
        self.on_write = on_write
        self.fail: Exception | None = None
        self.writes: list[Write] = []

    async def __call__(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> tuple[int, int]:
        """Record one write and acknowledge it, or raise `fail`."""
        if self.fail is not None:
            raise self.fail
        write = Write(topic, key, value, 0, len(self.to(topic)), tuple(headers or ()))
        self.writes.append(write)
        if self.on_write is not None:
            self.on_write(write)
        return write.partition, write.offset

    def to(self, topic: str) -> list[Write]:
        """The records written to one topic."""
        return [w for w in self.writes if w.topic == topic]


def pipeline_for(
    automations: Iterable[Automation],
    settings: Settings | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Pipeline:
    """A Pipeline over these automations, with the topics and limits of `settings`."""
    return Pipeline.from_settings(
        AutomationIndex(list(automations)),
        settings if settings is not None else Settings(),
        clock=clock if clock is not None else (lambda: datetime.now(UTC)),
    )


def run_events(
    pipeline: Pipeline,
    events: Iterable[bytes],
    *,
    topic: str = "registry-events",
    aliases: AliasStore | None = None,
) -> list[ProcessResult]:
    """Each event's result, in order, sharing one alias store as one worker would."""
    store = aliases if aliases is not None else MemoryAliasStore()
    return [
        pipeline.process(raw, aliases=store, source=SourceInfo(topic, offset=offset))
        for offset, raw in enumerate(events)
    ]
