"""The engine: consume the event topics in batches, decide, produce, then commit.

It runs inside the Faust worker (an app task beside the web server, the API, the rule
book and the history agent) but reads the events with its own aiokafka consumer:
Faust's per-message delivery (an Event, a queue hop, an awaited ack and an
`asyncio.wait` per message) costs a no-op agent 60 us per event, more than the whole
decision (docs/benchmarks.md). Decisions stay in app.pipeline; this module only moves
data.

- One consumer group (`<app_id>-engine`) on both event topics, range-assigned so that
  partition p of both topics lands on one worker with changelog partition p of the
  alias pointers (app.tables), which is read back on every assignment.
- A batch is what `getmany` returns. Its jobs, dead letters, execution-history records
  and alias-pointer changes are queued on the producer together; the batch's offsets
  become committable only once Kafka has acknowledged every one of them, and after the
  batch before it (the next batch is decided meanwhile). Commits are sent at most every
  COMMIT_INTERVAL_SECONDS, and on revocation and shutdown.
- A crash or an error before the acknowledgement leaves the batch to be processed
  again; its jobs repeat with the same job_id (consumers deduplicate on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from app.errors import HookstreamError
from app.history import execution_records
from app.kafka_io import RebalanceForwarder, action_producer, topic_partitions
from app.pipeline import ProcessResult
from app.tables import AliasPointers, read_changelog

if TYPE_CHECKING:
    from app.worker import Hookstream

__all__ = ["COMMIT_INTERVAL_SECONDS", "MAX_BATCH", "Engine"]

log = logging.getLogger(__name__)

# Records one getmany returns at most: large enough to amortise the per-batch
# acknowledgement in a catch-up, small enough to keep a batch's latency low.
MAX_BATCH = 2000
COMMIT_INTERVAL_SECONDS = 0.5


class Engine:
    """The event consumer of one worker (see the module docstring)."""

    def __init__(self, hs: Hookstream) -> None:
        self.hs = hs
        s = hs.settings
        self.settings = s
        self.topics = (s.registry_events_topic, s.artifact_events_topic)
        self.aliases = AliasPointers()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        # Offsets whose records are acknowledged, not yet committed / last committed.
        self.acked: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.assigned_once = False
        self.rebalancing = True
        # Next offset to process per partition: records below it are done already (a
        # batch fetched before a rebalance, then fetched again from the committed offset).
        self.next_offset: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self._last_commit = 0.0
        # The acknowledgement of the last batch handled (each awaits the one before).
        self._acks: asyncio.Future[None] | None = None
        self._failed = False
        self._keep: asyncio.Future[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """The app task: wait for the automations, then consume until cancelled."""
        # No event may be matched before every automation is loaded, or a restart
        # would silently skip jobs for events consumed in that window.
        await self.hs.rulebook.ready.wait()
        # The loaded automations live until replaced: frozen like the rest of startup
        # (app.worker), full collections skip them (10,000 automations are ~390,000
        # objects, a 195 ms collection).
        gc.freeze()
        try:
            await self._start()
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Kafka refused a record after its retries, or the state could not be read:
            # nothing unacknowledged was committed; a restart processes it again.
            log.critical("engine failed; stopping the worker: %r", exc)
            await self.hs.app.crash(exc)
        finally:
            await asyncio.shield(self._close())

    async def _start(self) -> None:
        s = self.settings
        self.producer = action_producer(
            s, f"{s.engine_group_id}-producer", max_request_size=s.max_record_bytes
        )
        await self.producer.start()
        session_ms = int(s.broker_session_timeout_seconds * 1000)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=s.engine_group_id,
            client_id=s.engine_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Range keeps partition p of both event topics on one worker, beside the
            # alias pointers' changelog partition p (aiokafka's default is round robin).
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=int(s.broker_heartbeat_interval_seconds * 1000),
            max_partition_fetch_bytes=max(1 << 20, s.max_record_bytes),
            fetch_max_wait_ms=100,
        )
        await self.consumer.start()
        await self._check_partitions()
        listener = RebalanceForwarder(self.on_revoked, self.on_assigned)
        self.consumer.subscribe(topics=list(self.topics), listener=listener)

    async def _check_partitions(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        counts = {
            topic: len(await topic_partitions(consumer, topic))
            for topic in (*self.topics, self.settings.alias_pointers_topic)
        }
        changelog = counts.pop(self.settings.alias_pointers_topic)
        wider = {t: n for t, n in counts.items() if n > changelog}
        if wider:
            raise HookstreamError(
                f"event topics {wider} have more partitions than the alias-pointer "
                f"changelog {self.settings.alias_pointers_topic!r} ({changelog}); "
                "give it as many partitions"
            )

    async def _close(self) -> None:
        async with self._lock:
            await self._acked_all()
            if self.consumer is not None:
                with contextlib.suppress(KafkaError, IllegalStateError, CommitFailedError):
                    await self._commit(force=True)
                await self.consumer.stop()
                self.consumer = None
            if self.producer is not None:
                await self.producer.stop()
                self.producer = None

    # --- the batch loop -------------------------------------------------------------------

    async def _loop(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
            # A rebalance may run before the lock is ours: _handle checks each partition.
            async with self._lock:
                if batches:
                    await self._handle(batches)
                await self._commit()

    async def _handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        producer = self.producer
        assert producer is not None
        started = time.perf_counter()
        hs = self.hs
        process = hs.pipeline.process
        aliases = self.aliases
        send = producer.send
        dlq = self.settings.dlq_topic
        history = self.settings.action_results_topic if self.settings.history_enabled else None
        sent: list[Awaitable[Any]] = []
        done: dict[TopicPartition, int] = {}
        now: datetime | None = None
        for tp, records in batches.items():
            records = self._fresh(tp, records)
            if not records:
                continue
            aliases.partition = tp.partition
            results: list[ProcessResult] = []
            for record in records:
                result = process(record.value, aliases=aliases, source=record)
                results.append(result)
                # `send` only queues the record (it waits only while the producer's
                # buffer is full); delivery is awaited once per batch, below.
                for out in result.outbounds:
                    sent.append(await send(out.topic, out.value, key=out.key))
                if result.dead_letter is not None:
                    sent.append(await send(dlq, result.dead_letter, key=record.key))
                if result.failures:
                    # A match that could not become a job (e.g. over the record limit).
                    _log_failures(result)
                if history is not None and result.matched:
                    if now is None:
                        now = datetime.now(UTC)
                    for rec in execution_records(result, now):
                        sent.append(
                            await send(history, rec.value, key=rec.key, headers=rec.headers)
                        )
            done[tp] = records[-1].offset + 1
            hs.metrics.observe_batch(results, tp.topic, started, time.perf_counter())
        for partition, key, value in aliases.drain():
            sent.append(
                await send(self.settings.alias_pointers_topic, value, key=key, partition=partition)
            )
        self.next_offset.update(done)
        # The next batch is decided while this one's records travel; acknowledgements
        # are chained, so offsets become committable in order.
        self._acks = asyncio.ensure_future(self._ack(self._acks, sent, done))
        self._acks.add_done_callback(self._ack_failed)

    async def _ack(
        self,
        previous: asyncio.Future[None] | None,
        sent: list[Awaitable[Any]],
        done: dict[TopicPartition, int],
    ) -> None:
        if previous is not None:
            await previous
        if sent:
            await asyncio.gather(*sent)
        self.acked.update(done)

    def _ack_failed(self, task: asyncio.Future[None]) -> None:
        if task.cancelled() or self._failed:
            return
        exc = task.exception()
        if exc is None:
            return
        # Kafka refused a record after its retries: this batch and every later one stay
        # unacknowledged, and the worker stops, so a restart processes them again.
        self._failed = True
        log.critical("a job, dead letter or state record could not be stored; stopping: %r", exc)
        self._keep = asyncio.ensure_future(self.hs.app.crash(exc))

    async def _acked_all(self) -> None:
        """Wait until every batch handled so far is acknowledged (or failed)."""
        if self._acks is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._acks)

    def _fresh(self, tp: TopicPartition, records: list[Any]) -> list[Any]:
        """The records of a batch still to process (none when the partition is not ours)."""
        if tp not in self.assigned:
            # Fetched before a rebalance that has not finished here: everything before
            # these records is done and acknowledged, so the consumer resumes at them.
            consumer = self.consumer
            if consumer is not None and tp in consumer.assignment():
                consumer.seek(tp, records[0].offset)
            return []
        start = self.next_offset.get(tp)
        if start is not None and records[0].offset < start:
            return [r for r in records if r.offset >= start]
        return records

    # --- offsets and rebalancing ----------------------------------------------------------

    async def _commit(
        self, *, force: bool = False, only: set[TopicPartition] | None = None
    ) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        now = time.monotonic()
        if not force and now - self._last_commit < COMMIT_INTERVAL_SECONDS:
            return
        self._last_commit = now
        offsets = {
            tp: offset
            for tp, offset in self.acked.items()
            if (only is None or tp in only) and self.committed.get(tp) != offset
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on (a rebalance): the new owner reprocesses from the last
            # committed offset; the jobs repeat with the same job_id.
            log.warning("offset commit refused (%s); the events are processed again", exc)
            return
        self.committed.update(offsets)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what is acknowledged and let go of the partitions' state."""
        self.rebalancing = True
        async with self._lock:
            await self._acked_all()
            with contextlib.suppress(KafkaError):
                await self._commit(force=True, only=revoked)
            for tp in revoked:
                self.acked.pop(tp, None)
                self.committed.pop(tp, None)
                self.next_offset.pop(tp, None)
            self.assigned = frozenset(self.assigned - revoked)
            self.aliases.clear()

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Read the alias pointers of the assigned partitions back from the changelog."""
        async with self._lock:
            s = self.settings
            parts = await read_changelog(
                s.kafka_bootstrap_servers,
                s.alias_pointers_topic,
                {tp.partition for tp in assigned},
                client_id=f"{s.engine_group_id}-restore",
            )
            self.aliases.replace(parts)
            self.assigned = frozenset(assigned)
            self.assigned_once = True
            self.rebalancing = False
        log.info(
            "engine assigned %d partitions; alias pointers of %d collections restored",
            len(assigned),
            sum(len(p) for p in parts.values()),
        )

    async def lag(self) -> dict[TopicPartition, int]:
        """End offset minus committed offset for each assigned partition."""
        consumer = self.consumer
        tps = sorted(self.assigned)
        if consumer is None or not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        out = {}
        for tp in tps:
            done = self.committed.get(tp)
            if done is None:
                done = await consumer.committed(tp) or 0
            out[tp] = max(ends.get(tp, 0) - done, 0)
        return out


def _log_failures(result: ProcessResult) -> None:
    event_id = result.event.event_id if result.event is not None else None
    for automation_id, reason in result.failures:
        log.error("event %r: automation %r produced no job: %s", event_id, automation_id, reason)
