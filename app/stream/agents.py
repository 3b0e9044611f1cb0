"""The event agent: registry and artifact events in, jobs and state records out.

One Faust agent per event topic (concurrency 1: faust-streaming #606) reads it as raw
bytes, in ``noack_take`` batches. ``EventPath.handle`` passes each record through
``app.core.pipeline`` and queues every job, dead letter and execution-history record
of the batch on the producer; its alias-pointer changes reach the changelog with the
next flush (app.stream.flushes). The batch is acknowledged by ``app.stream.acks`` once
Kafka has acknowledged all of them and that flush, in offset order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from app.core.history import execution_records
from app.core.pipeline import Pipeline, ProcessResult
from app.stream.acks import OrderedAcks
from app.stream.aliases import TableAliasPointers
from app.stream.deliveries import DeliveryGuard
from app.stream.flushes import StateFlush
from app.stream.metrics import WorkerMetrics

__all__ = ["BATCH_MAX", "BATCH_SECONDS", "EventPath", "agent_name", "define_event_agent"]

log = logging.getLogger(__name__)

# A batch is what arrived within this time, up to this many: large enough to amortise
# the per-batch acknowledgement in a catch-up, short enough to keep latency low.
BATCH_MAX = 2000
BATCH_SECONDS = 0.01

# (topic, value, key, headers) -> the future of Kafka's acknowledgement.
Send = Callable[[str, bytes, bytes | None, Any], Awaitable[Awaitable[Any]]]


class EventPath:
    """What the event agent does with one batch (no Faust stream needed to test it)."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        aliases: TableAliasPointers,
        state: StateFlush,
        send: Send,
        acks: OrderedAcks,
        metrics: WorkerMetrics,
        dlq_topic: str,
        history_topic: str | None,
        deliveries: DeliveryGuard | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.aliases = aliases
        self.state = state
        self.send = send
        self.acks = acks
        self.metrics = metrics
        self.dlq_topic = dlq_topic
        self.history_topic = history_topic
        # Repeated webhook deliveries are dropped (only records with the delivery header).
        self.deliveries = deliveries

    async def handle(self, events: Sequence[Any]) -> None:
        """Decide a batch, queue what it produced, and hand it to the acknowledgements."""
        if self.acks.failed:
            # A refused record is stopping the worker: nothing more is produced or acked.
            return
        started = time.perf_counter()
        process = self.pipeline.process
        aliases = self.aliases
        send = self.send
        dlq = self.dlq_topic
        history = self.history_topic
        deliveries = self.deliveries
        sent: list[Awaitable[Any]] = []
        results: list[ProcessResult] = []
        now: datetime | None = None
        for event in events:
            message = event.message
            if deliveries is not None and message.headers and deliveries.repeated(event):
                continue
            aliases.event = event
            result = process(message.value, aliases=aliases, source=message)
            results.append(result)
            # `send` only queues the record (it waits only while the producer's buffer
            # is full); delivery is awaited once per batch, by the acknowledgements.
            for out in result.outbounds:
                sent.append(await send(out.topic, out.value, out.key, out.headers))
            if result.dead_letter is not None:
                sent.append(await send(dlq, result.dead_letter, result.dead_letter_key, None))
            if result.aliases_dropped:
                self._aliases_dropped(result, message.topic)
            if result.failures:
                # A match that could not become a job (e.g. over the record limit).
                _log_failures(result)
            if history is not None and result.matched:
                if now is None:
                    now = datetime.now(UTC)
                for rec in execution_records(result, now):
                    sent.append(await send(history, rec.value, rec.key, rec.headers))
        aliases.event = None
        # The alias changes reach the changelog with the next flush; the acks wait for it.
        sent.append(self.state.after_batch())
        if deliveries is not None:
            sent.extend(deliveries.flush())
        self.acks.submit(events, sent)
        if events:
            # An agent reads one topic, so a batch is all of one topic.
            topic = events[0].message.topic
            self.metrics.observe_batch(results, topic, started, time.perf_counter())

    def _aliases_dropped(self, result: ProcessResult, topic: str) -> None:
        self.metrics.alias_pointers_dropped.labels(topic).inc(result.aliases_dropped)
        assert result.event is not None
        log.warning(
            "collection %r: %d alias pointers dropped (the per-collection cap, "
            "HOOKSTREAM_MAX_ALIASES_PER_COLLECTION, or the state record's size limit)",
            result.event.collection_path,
            result.aliases_dropped,
        )


def agent_name(topic: str) -> str:
    """The name of the event agent of one topic."""
    return f"process-{topic}"


def define_event_agent(
    app: Any, topic: Any, path: EventPath, ready: Callable[[], Awaitable[Any]]
) -> Any:
    """Register the event agent of one event topic (a Faust topic of raw bytes)."""

    async def process_events(stream: Any) -> None:
        # No event may be matched before every automation is loaded, or a restart
        # would silently skip jobs for events consumed in that window.
        await ready()
        async for events in stream.noack_take(BATCH_MAX, BATCH_SECONDS):
            await path.handle(events)

    name = agent_name(topic.get_topic_name())
    return app.agent(topic, name=name, concurrency=1)(process_events)


def _log_failures(result: ProcessResult) -> None:
    event_id = result.event.event_id if result.event is not None else None
    for automation_id, reason in result.failures:
        log.error("event %r: automation %r produced no job: %s", event_id, automation_id, reason)
