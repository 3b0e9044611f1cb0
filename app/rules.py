"""The rule book: every worker's full, live copy of the automations.

The compacted ``automations`` topic is the changelog of a replicated table. Each
worker reads all of its partitions from the beginning with a group-less consumer
and keeps reading, so new automations take effect without a restart and tombstones
remove them. This is what Faust's GlobalTable does, without its reported
multi-worker bugs (faust-streaming #283); two-worker tests prove it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.errors import HookstreamError
from app.kafka_io import topic_partitions
from app.matching import AutomationIndex
from app.pipeline import automation_from_record
from app.settings import Settings

__all__ = ["RuleBook"]

log = logging.getLogger(__name__)


class RuleBook:
    """Reads the automations topic into an AutomationIndex and keeps it current."""

    def __init__(
        self,
        settings: Settings,
        index: AutomationIndex,
        *,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.ready = asyncio.Event()
        self.invalid_records = 0
        self._on_change = on_change
        self._consumer: AIOKafkaConsumer | None = None
        # Next offset to apply, per partition, and an event set whenever it moves:
        # the API waits on them so that a read after a write sees the write.
        self._applied: dict[int, int] = {}
        self._advanced = asyncio.Event()

    async def ping(self, timeout: float = 2.0) -> bool:
        """Whether the broker answers a metadata request now."""
        consumer = self._consumer
        if consumer is None:
            return False
        try:
            await asyncio.wait_for(consumer.topics(), timeout)
        except Exception:  # any failure means "not reachable"; /readyz reports it
            return False
        return True

    def applied_offset(self, partition: int) -> int:
        """The next offset of `partition` this rule book will apply (0: none yet)."""
        return self._applied.get(partition, 0)

    def _advance(self, partition: int, next_offset: int) -> None:
        self._applied[partition] = max(next_offset, self._applied.get(partition, 0))
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def wait_applied(self, partition: int, offset: int, timeout: float) -> bool:
        """Wait until the record at `offset` of `partition` is applied; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.applied_offset(partition) <= offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._advanced.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the compacted topic: an automation or a tombstone."""
        automation_id = key.decode("utf-8", "replace") if key else None
        if value is None:
            if automation_id is not None and self.index.remove(automation_id):
                self._changed(automation_id, False)
            return
        try:
            automation = automation_from_record(value)
        except HookstreamError as exc:
            # The API refuses invalid automations; a record written around it is skipped.
            self.invalid_records += 1
            log.error("skipping invalid automation record %r: %s", automation_id, exc)
            return
        if automation is None:
            return
        if automation_id is not None and automation_id != automation.id:
            self.invalid_records += 1
            log.error("automation key %r does not match its id %r", automation_id, automation.id)
            return
        self.index.upsert(automation)
        self._changed(automation.id, True)

    def _changed(self, automation_id: str, present: bool) -> None:
        if self._on_change is not None:
            self._on_change(automation_id, present)

    async def run(self) -> None:
        """Read from the beginning, mark ready at the end offsets, then follow."""
        topic = self.settings.automations_topic
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=f"{self.settings.app_id}-rulebook",
        )
        await consumer.start()
        self._consumer = consumer
        try:
            tps = await topic_partitions(consumer, topic)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=1000)
                for tp, records in batches.items():
                    for record in records:
                        self.apply(record.key, record.value)
                    if records:
                        self._advance(tp.partition, records[-1].offset + 1)
                if not self.ready.is_set() and all(
                    await asyncio.gather(*(self._caught_up(consumer, tp, end[tp]) for tp in tps))
                ):
                    log.info("rule book ready: %d automations loaded", len(self.index))
                    self.ready.set()
        finally:
            self._consumer = None
            await consumer.stop()

    @staticmethod
    async def _caught_up(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> bool:
        return bool(await consumer.position(tp) >= end)
