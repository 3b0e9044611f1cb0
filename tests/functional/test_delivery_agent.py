"""Repeated webhook deliveries through the event agent (app.stream.deliveries).

The rig is test_event_agent's (a real faust.App, memory store, the agent's
``noack_take`` stream, a real Pipeline); here its EventPath also has a DeliveryGuard
over the real ``ingest-deliveries`` Faust Table. Records are delivered at chosen offsets
as Faust's consumer would hand them to the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faust.types.tuples import TP, Message
from prometheus_client import CollectorRegistry

from app.core.deliveries import DELIVERY_HEADER, Recorded
from app.serialization import loads
from app.stream.deliveries import DeliveryGuard, DeliveryLedger, define_delivery_table
from app.stream.metrics import WorkerMetrics
from tests.factories import ACTION_TOPICS, event_bytes
from tests.functional.test_event_agent import (
    EVENTS,
    HISTORY,
    KEY,
    PARTITIONS,
    Rig,
    delivered,
    settle,
)
from tests.support import until

WEBHOOK = ACTION_TOPICS["webhook"]
DROPPED = "hookstream_repeated_deliveries_dropped_total"


class DeliveryRig(Rig):
    """The event agent's rig with the deliveries table and its guard."""

    def __init__(self) -> None:
        super().__init__()
        self.registry = CollectorRegistry()
        self.ledger = DeliveryLedger(
            define_delivery_table(self.app, PARTITIONS),
            WorkerMetrics(self.registry).repeated_deliveries_dropped,
            ttl=86_400.0,
            cap=1000,
        )
        self.path.deliveries = DeliveryGuard(self.ledger)

    def dropped(self) -> float:
        """The drop counter of the event topic."""
        return self.registry.get_sample_value(DROPPED, {"topic": EVENTS}) or 0.0


@pytest.fixture
async def rig() -> AsyncIterator[DeliveryRig]:
    """A fresh app, event agent and deliveries table per test."""
    rig = DeliveryRig()
    yield rig
    rig.close()


async def put_at(
    agent_ctx: Any, rig: Rig, offset: int, value: bytes, headers: list[tuple[str, bytes]]
) -> Any:
    """Hand the stream a record at partition 2, `offset` (what the consumer does)."""
    message = Message(
        EVENTS, 2, offset, 0.0, 0, headers, KEY, value, b"",
        generation_id=rig.app.consumer_generation_id,
    )  # fmt: skip
    channel = agent_ctx.stream().channel
    event = await channel.decode(message)
    await channel.put(event)
    return event


def delivery(event_id: str) -> list[tuple[str, bytes]]:
    """The header the ingest view sets."""
    return [(DELIVERY_HEADER, event_id.encode())]


async def test_a_repeat_at_a_later_offset_makes_no_job_and_no_history(rig: DeliveryRig) -> None:
    """The delivery at offset 5 makes its job and is recorded (store and changelog, on
    the event's partition); the copy at offset 9 makes no job, no history record, and
    is counted; both are acked."""
    value = event_bytes(event_id="mlflow-d1")
    async with rig.agent.test_context() as agent_ctx:
        first = await put_at(agent_ctx, rig, 5, value, delivery("mlflow-d1"))
        assert await until(lambda: bool(rig.send.to(WEBHOOK)), 2.0, every=0.005)
        recorded_value = Recorded.from_json(rig.ledger.table.data["mlflow-d1"])
        assert recorded_value is not None
        assert (recorded_value.topic, recorded_value.partition, recorded_value.offset) == (
            EVENTS,
            2,
            5,
        )
        changelog = rig.take_changelog()
        deliveries_topic = rig.ledger.changelog_topic
        [recorded] = [
            c for c in changelog if c.message.channel.get_topic_name() == deliveries_topic
        ]
        assert recorded.message.partition == 2
        second = await put_at(agent_ctx, rig, 9, value, delivery("mlflow-d1"))
        await settle()
        assert len(rig.send.to(WEBHOOK)) == 1
        assert len(rig.send.to(HISTORY)) == 1
        assert rig.dropped() == 1.0
        for sent in rig.send.records:
            sent.future.set_result(None)
        for fut in changelog + rig.take_changelog():
            delivered(fut)
        assert await until(lambda: bool(second.message.acked), 2.0, every=0.005)
        assert first.message.acked


async def test_the_same_offset_again_is_processed_again_with_the_same_job_id(
    rig: DeliveryRig,
) -> None:
    """A restart before the commit hands the recorded record over again: not a repeat,
    its job is made again with the same job id (nothing is lost)."""
    value = event_bytes(event_id="mlflow-d2")
    async with rig.agent.test_context() as agent_ctx:
        await put_at(agent_ctx, rig, 7, value, delivery("mlflow-d2"))
        await put_at(agent_ctx, rig, 7, value, delivery("mlflow-d2"))
        assert await until(lambda: len(rig.send.to(WEBHOOK)) == 2, 2.0, every=0.005)
    first, second = (loads(w.value)["job_id"] for w in rig.send.to(WEBHOOK))
    assert first == second
    assert rig.dropped() == 0.0


async def test_plain_events_are_neither_looked_up_nor_recorded(rig: DeliveryRig) -> None:
    """Without the delivery header two copies of an event make two jobs (consumers
    deduplicate by job id, as before) and the table stays empty."""
    value = event_bytes(event_id="plain-1")
    async with rig.agent.test_context() as agent_ctx:
        await put_at(agent_ctx, rig, 1, value, [])
        await put_at(agent_ctx, rig, 2, value, [("trace", b"x")])
        assert await until(lambda: len(rig.send.to(WEBHOOK)) == 2, 2.0, every=0.005)
    assert dict(rig.ledger.table.data.items()) == {}
    assert rig.dropped() == 0.0


async def test_a_delivery_the_ingest_view_recorded_drops_the_later_copy(rig: DeliveryRig) -> None:
    """The ingest view recorded offset 3 (the race: a second copy was written at 8
    before the first was read): the record at 3 makes the job, the one at 8 nothing."""
    value = event_bytes(event_id="mlflow-d3")
    recording = asyncio.ensure_future(rig.ledger.record("mlflow-d3", EVENTS, 2, 3))
    assert await until(lambda: bool(rig.app.producer.buffer.pending.qsize()), 2.0, every=0.005)
    [changelog] = rig.take_changelog()
    assert changelog.message.partition == 2
    delivered(changelog)
    await asyncio.wait_for(recording, 2)
    async with rig.agent.test_context() as agent_ctx:
        await put_at(agent_ctx, rig, 3, value, delivery("mlflow-d3"))
        await put_at(agent_ctx, rig, 8, value, delivery("mlflow-d3"))
        assert await until(lambda: rig.dropped() == 1.0, 2.0, every=0.005)
    assert len(rig.send.to(WEBHOOK)) == 1


async def test_the_purge_deletes_expired_entries_and_the_oldest_past_the_cap(
    rig: DeliveryRig,
) -> None:
    """On the partitions this worker owns: an expired entry and the oldest past the cap
    leave the store and get a tombstone on their partition; a partition owned by another
    worker is left alone."""
    ledger = rig.ledger
    ledger.cap = 2
    now = ledger.clock()
    owned = {
        "expired": Recorded(EVENTS, 2, 1, now - 2 * ledger.ttl),
        "oldest": Recorded(EVENTS, 2, 2, now - 30),
        "older": Recorded(EVENTS, 2, 3, now - 20),
        "newest": Recorded(EVENTS, 2, 4, now - 10),
    }
    for key, recorded in owned.items():
        ledger.store(key, recorded)
    ledger.store("elsewhere", Recorded(EVENTS, 1, 1, now - 2 * ledger.ttl))
    rig.app.assignor.assigned_actives = lambda: {TP(ledger.changelog_topic, 2)}
    assert ledger.purge() == 2
    assert sorted(dict(ledger.table.data.items())) == ["elsewhere", "newest", "older"]
    tombstones = rig.take_changelog()
    assert sorted((fut.message.partition, fut.message.value) for fut in tombstones) == [
        (2, None),
        (2, None),
    ]
    assert not ledger.seen("expired")
    assert ledger.seen("newest")
