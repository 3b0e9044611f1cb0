"""The dispatcher service: a consumer group on an action topic and its retry-tier topics."""

# Design (docs/delivery.md): one aiokafka consumer in group `<app_id>-dispatch-<kind>`
# reads the action topic and every `<topic>.retry.<tier>` topic. Each record becomes a
# task; at most `max_in_flight_per_partition` run per partition (the partition is paused
# while full), so one slow endpoint holds one slot, not the partition. Offsets are
# committed per partition up to the first unfinished one. A retry partition is paused
# while its head is not due and resumed when it is.

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from app.core.topics import DispatchKind, dispatch_topics
from app.dispatch.delivery_errors import ServiceStoppingError
from app.dispatch.http import WebhookSender
from app.dispatch.metrics import DispatchMetrics
from app.dispatch.outgoing import Publisher
from app.dispatch.partition import FULL, NOT_DUE, AssignedPartition
from app.dispatch.processor import JobProcessor, JobRecord
from app.dispatch.retry_state import RetryState
from app.dispatch.secrets import SecretResolver
from app.dispatch.state import DispatchState
from app.dispatch.web import start_web
from app.kafka.admin import dispatch_topic_specs, ensure_topics
from app.kafka.clients import RebalanceForwarder, action_producer
from app.settings import Settings

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


class Dispatcher:
    """`hookstream dispatch <kind>`: deliver jobs of one action topic, durably and once."""

    def __init__(
        self,
        settings: Settings,
        kind: DispatchKind,
        *,
        registry: CollectorRegistry | None = None,
        environ: Mapping[str, str] | None = None,
        web_enabled: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.kind = kind
        self.topics = dispatch_topics(settings, kind)
        self.group_id = f"{settings.app_id}-dispatch-{kind}"
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = DispatchMetrics(self.registry)
        self.metrics.prime(kind)
        self._environ = os.environ if environ is None else environ
        self._web_enabled = web_enabled
        self._rng = rng
        d = settings.dispatch
        self._limit = d.max_in_flight_per_partition
        self.state = DispatchState(
            settings.kafka_bootstrap_servers,
            dedup_topic=self.topics.dedup,
            gone_topic=self.topics.gone,
            retention_seconds=d.dedup_retention_seconds,
            client_id=self.group_id,
        )
        self._parts: dict[TopicPartition, AssignedPartition] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._sender: WebhookSender | None = None
        self._processor: JobProcessor | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._commit_lock = asyncio.Lock()
        self._running = False
        self._started = False
        self._rebalancing = True
        self._assigned_once = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Create topics, load state, join the group, start delivering and serving HTTP."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        s = self.settings
        await ensure_topics(s, extra=dispatch_topic_specs(s))
        self._running = True
        if self._web_enabled:
            self._runner = await start_web(s.web_host, s.web_port, self.registry, self.readiness)
        await self.state.start()
        await self.state.caught_up()
        # Retries and dead letters carry the job: as large as the worker's records.
        self._producer = action_producer(
            s, f"{self.group_id}-producer", max_request_size=s.max_record_bytes
        )
        await self._producer.start()
        self._sender = WebhookSender(s.dispatch)
        await self._sender.start()
        self._processor = JobProcessor(
            topics=self.topics,
            settings=s.dispatch,
            publisher=Publisher(self._producer, running=lambda: self._running),
            state=self.state,
            sender=self._sender,
            secrets=SecretResolver.from_settings(s.dispatch, self._environ),
            metrics=self.metrics,
            rng=self._rng,
        )
        session_ms = int(s.dispatch.session_timeout_seconds * 1000)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=self.group_id,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(session_ms // 4, 100),
            fetch_max_wait_ms=200,
        )
        await self._consumer.start()
        listener = RebalanceForwarder(self._on_revoked, self._on_assigned)
        self._consumer.subscribe(topics=self.topics.consumed, listener=listener)
        self._tasks = [
            asyncio.create_task(self._fetch_loop(), name=f"dispatch-{self.kind}-fetch"),
            asyncio.create_task(self._commit_loop(), name=f"dispatch-{self.kind}-commit"),
        ]
        self._started = True
        log.info(
            "dispatcher %s started: group %s, topics %s",
            self.kind,
            self.group_id,
            ", ".join(self.topics.consumed),
        )

    async def stop(self) -> None:
        """Finish in-flight jobs (up to drain_seconds), commit, leave the group, close."""
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for part in self._parts.values():
            part.cancel_timer()
        await self._drain(list(self._parts.values()))
        await self._commit()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        self._parts.clear()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._sender is not None:
            await self._sender.close()
            self._sender = None
        await self.state.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._started = False

    async def __aenter__(self) -> Self:
        """Start on entry."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on exit."""
        await self.stop()

    @property
    def assigned(self) -> list[TopicPartition]:
        """Partitions this instance holds now."""
        return sorted(self._parts)

    def readiness(self) -> dict[str, bool]:
        """The checks behind /readyz."""
        return {
            "started": self._started,
            "state_reader": self.state.alive,
            "partitions_assigned": self._assigned_once.is_set() and not self._rebalancing,
        }

    async def wait_ready(self) -> None:
        """Wait until the group gave this instance its first assignment."""
        await self._assigned_once.wait()

    # --- rebalancing ----------------------------------------------------------------------

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        if assigned:
            consumer.pause(*assigned)
        # What the previous owner wrote before it committed must be known first.
        await self.state.caught_up()
        retry_topics = set(self.topics.retries)
        for tp in assigned:
            self._parts[tp] = AssignedPartition(tp, tp.topic in retry_topics, self._limit)
        current = consumer.assignment()
        live = [tp for tp in assigned if tp in current]
        if live:
            consumer.resume(*live)
        self._rebalancing = False
        self._assigned_once.set()
        log.info("dispatcher %s assigned %d partitions", self.kind, len(assigned))

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._rebalancing = True
        parts = [self._parts[tp] for tp in revoked if tp in self._parts]
        for part in parts:
            part.revoked = True
            part.cancel_timer()
        await self._drain(parts)
        await self._commit(parts)
        for part in parts:
            self._parts.pop(part.tp, None)

    async def _drain(self, parts: list[AssignedPartition]) -> None:
        """Let in-flight jobs finish for up to drain_seconds, then cancel the rest."""
        tasks = [t for part in parts for t in part.tasks]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=self.settings.dispatch.drain_seconds)
        for task in late:
            task.cancel()
        if late:
            log.warning("cancelled %d unfinished jobs; they are redelivered", len(late))
            await asyncio.gather(*late, return_exceptions=True)

    # --- fetching -------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        max_records = max(self._limit * 4, 100)
        while self._running:
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
            except KafkaError as exc:
                log.warning("fetch failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            now_ms = time.time() * 1000
            for tp, records in batches.items():
                part = self._parts.get(tp)
                if part is None or part.revoked:
                    self._defer(tp, records[0].offset)
                    continue
                self._take(part, records, now_ms)

    def _defer(self, tp: TopicPartition, offset: int) -> None:
        """Records for a partition not set up yet: fetch them again once it is."""
        consumer = self._consumer
        assert consumer is not None
        if tp in consumer.assignment():
            consumer.seek(tp, offset)
            consumer.pause(tp)

    def _take(self, part: AssignedPartition, records: list[Any], now_ms: float) -> None:
        consumer = self._consumer
        assert consumer is not None
        for rec in records:
            if part.next_offset is not None and rec.offset < part.next_offset:
                continue  # already taken up (a refetch after seek)
            if part.is_retry:
                due = RetryState.due_ms(rec.headers)
                if due is not None and due > now_ms:
                    consumer.seek(part.tp, rec.offset)
                    self._hold_until_due(part, (due - now_ms) / 1000)
                    break
            part.next_offset = rec.offset + 1
            part.tracker.register(rec.offset)
            job = JobRecord(
                rec.topic, rec.partition, rec.offset, rec.key, rec.value, list(rec.headers or ())
            )
            task = asyncio.create_task(self._run(part, job))
            part.tasks.add(task)
            self.metrics.jobs_in_flight.labels(self.kind).inc()
            task.add_done_callback(functools.partial(self._done, part))
        if part.full:
            self._pause(part, FULL)

    def _hold_until_due(self, part: AssignedPartition, delay: float) -> None:
        self._pause(part, NOT_DUE)
        part.cancel_timer()
        loop = asyncio.get_running_loop()
        part.due_timer = loop.call_later(delay, self._release, part, NOT_DUE)

    def _pause(self, part: AssignedPartition, reason: str) -> None:
        consumer = self._consumer
        if consumer is None or part.revoked:
            return
        part.paused_for.add(reason)
        if part.tp in consumer.assignment():
            consumer.pause(part.tp)

    def _release(self, part: AssignedPartition, reason: str) -> None:
        if reason == NOT_DUE:
            part.due_timer = None
        part.paused_for.discard(reason)
        consumer = self._consumer
        if consumer is None or part.revoked or part.paused_for:
            return
        if part.tp in consumer.assignment():
            consumer.resume(part.tp)

    # --- running jobs ---------------------------------------------------------------------

    async def _run(self, part: AssignedPartition, job: JobRecord) -> None:
        processor = self._processor
        assert processor is not None
        backoff = 1.0
        async with part.semaphore:
            while True:
                try:
                    await processor.process(job)
                    break
                except ServiceStoppingError:
                    return  # not finished: the record is taken up again after a restart
                except Exception:
                    if not self._running:
                        return
                    # A bug or an unexpected error must not commit past the job.
                    log.exception(
                        "job at %s[%d]@%d failed; trying again in %.0fs",
                        job.topic,
                        job.partition,
                        job.offset,
                        backoff,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 60.0)
        part.tracker.finish(job.offset)

    def _done(self, part: AssignedPartition, task: asyncio.Task[None]) -> None:
        part.tasks.discard(task)
        self.metrics.jobs_in_flight.labels(self.kind).dec()
        if FULL in part.paused_for and not part.full:
            self._release(part, FULL)

    # --- committing -----------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        interval = self.settings.dispatch.commit_interval_seconds
        while self._running:
            await asyncio.sleep(interval)
            await self._commit()

    async def _commit(self, parts: list[AssignedPartition] | None = None) -> None:
        """Commit the finished prefix of every (or the given) partition."""
        consumer = self._consumer
        if consumer is None:
            return
        async with self._commit_lock:
            chosen = list(self._parts.values()) if parts is None else parts
            offsets = {p.tp: p.to_commit() for p in chosen}
            todo = {tp: off for tp, off in offsets.items() if off is not None}
            if not todo:
                return
            try:
                await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in todo.items()})
            except (CommitFailedError, IllegalStateError, KafkaError) as exc:
                # The group moved on; the next owner starts at the last commit and the
                # dedup table keeps finished jobs from being sent again.
                log.info("commit skipped: %s", exc)
                return
            for part in chosen:
                off = todo.get(part.tp)
                if off is not None:
                    part.committed = off
