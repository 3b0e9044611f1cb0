"""Faust agents: they only move data; decisions live in app.pipeline."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from app.history_table import history_writer
from app.pipeline import ProcessResult, SourceInfo
from app.tables import TableAliasStore

if TYPE_CHECKING:
    from app.worker import Hookstream

__all__ = ["define_agents"]

log = logging.getLogger(__name__)


def define_agents(hs: Hookstream) -> None:
    """Register one agent per event topic (concurrency 1: faust-streaming #606)."""
    for topic in (hs.registry_events, hs.artifact_events):
        name = f"process-{topic.get_topic_name()}"
        hs.app.agent(topic, name=name, concurrency=1)(_make_agent(hs))


def _make_agent(hs: Hookstream) -> Any:
    aliases = TableAliasStore(hs.alias_table)
    producer_send = hs.send
    pipeline = hs.pipeline
    dlq = hs.settings.dlq_topic
    record_history = history_writer(hs)

    async def process_events(stream: Any) -> None:
        # No event may be matched before every automation is loaded, or a restart
        # would silently skip jobs for events consumed in that window.
        await hs.rulebook.ready.wait()
        async for event in stream.events():
            started = time.perf_counter()
            message = event.message
            source = SourceInfo(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                headers=list(message.headers or ()),
            )
            result = pipeline.process(message.value, aliases=aliases, source=source)
            # Sends are queued, not awaited one by one; Faust flushes the producer
            # before it commits offsets, so no offset is committed before its jobs.
            for out in result.outbounds:
                await producer_send(out.topic, out.key, out.value)
            if result.dead_letter is not None:
                await producer_send(dlq, message.key, result.dead_letter)
            if result.failures:
                # A match that could not become a job (e.g. over the record limit).
                _log_failures(result)
            if result.matched:
                await record_history(result)
            hs.metrics.observe(result, message.topic, started)

    return process_events


def _log_failures(result: ProcessResult) -> None:
    event_id = result.event.event_id if result.event is not None else None
    for automation_id, reason in result.failures:
        log.error("event %r: automation %r produced no job: %s", event_id, automation_id, reason)
