"""The event agent inside a real faust.App, driven by Faust's agent test context.

What is real here: ``faust.App`` (memory store, web off, no autodiscovery; the broker
URL points nowhere, so nothing reaches a Kafka), the agent built by
``define_event_agent`` and its ``noack_take`` stream, ``EventPath`` with a real
``Pipeline`` over one automation, ``OrderedAcks``, and ``TableAliasPointers`` over the
real ``alias-pointers`` Faust Table (``define_alias_table``).

What stands in: ``EventPath.send`` is ``app.testing.RecordingSend``, a fake that
returns futures the test resolves
(Kafka's acknowledgements of the jobs, dead letters and history records). The
producer is never started, so the table's changelog records stay in Faust's producer
buffer (``app.producer.buffer.pending``) as ``FutureMessage``s; the test takes them
from there and resolves them, playing Kafka for the changelog too.

How Faust's test context delivers events, and so what each test proves (faust-streaming
0.15.3 has no ``App.test_context()``; the agent's ``test_context()`` needs no running app):

- ``agent.test_context()`` clones the agent onto an in-memory channel and
  ``put()`` decodes a plain ``faust.types.tuples.Message`` into an event on it. The
  agent's stream is the same ``Stream`` code as in production, so ``noack_take``
  runs as it does in a worker: the stream acks nothing itself (``enable_acks`` off)
  and ``Message.acked`` only turns true when ``OrderedAcks`` calls ``event.ack()``.
  A plain ``Message``'s final ack touches no consumer, so these tests prove *when
  the agent acks*, by ``event.message.acked``.
- ``test_commit_offset_moves_only_after_the_futures`` delivers a
  ``ConsumerMessage`` (what Faust's Kafka consumer hands a stream) through the same
  channel, with the topic in the conductor's ``acking_topics`` as a subscription
  would put it. The stream then tracks it in ``consumer.unacked`` and its ack goes
  through ``Consumer.ack``; the test reads the offset Faust would commit
  (``Consumer._new_offset``, what the commit loop uses). This proves Faust's commit
  position does not pass the event before the sends are acknowledged.
- Not covered in this tier (see tests/integration and tests/faults): real commits
  to a broker, rebalances, aiokafka's own futures and ``app.crash`` stopping a worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faust.types.tuples import TP, ConsumerMessage, RecordMetadata
from prometheus_client import CollectorRegistry

from app.contract.automations import Automation
from app.contract.dead_letters import DeadLetter, DeadLetterCode
from app.contract.jobs import job_id
from app.core.matching import AutomationIndex
from app.core.pipeline import Pipeline
from app.serialization import loads
from app.stream.acks import OrderedAcks
from app.stream.agents import EventPath, agent_name, define_event_agent
from app.stream.aliases import AliasState, TableAliasPointers, define_alias_table
from app.stream.flushes import StateFlush
from app.stream.metrics import WorkerMetrics
from app.stream.topics import raw_topic
from app.testing import RecordingSend
from tests.factories import (
    ACTION_TOPICS,
    NOW,
    event_bytes,
    event_dict,
    make_automation,
    make_event,
)
from tests.support import offline_app, until

EVENTS = "registry-events"
DLQ = "events.dlq"
HISTORY = "action-results"
PARTITIONS = 4
PATH = make_event().collection_path
KEY = PATH.encode()


class Rig:
    """A faust.App with the event agent over one topic, as the worker defines it."""

    def __init__(self, automations: list[Automation] | None = None) -> None:
        self.app: Any = offline_app("hookstream-functional")
        self.topic: Any = raw_topic(self.app, EVENTS, PARTITIONS)
        self.table: Any = define_alias_table(self.app, PARTITIONS)
        self.state = AliasState(self.table)
        # After every batch, through Faust's producer buffer (take_changelog reads it).
        self.flush = StateFlush(
            seconds=0.0,
            collect=self.state.flush,
            persisted=self.state.persisted,
            through_table=self.state.send_through_table,
        )
        self.send = RecordingSend()
        self.failures: list[BaseException] = []
        self.acks = OrderedAcks(self.failures.append)
        self.path = EventPath(
            pipeline=Pipeline(
                AutomationIndex([make_automation()] if automations is None else automations),
                ACTION_TOPICS,
                1 << 20,
                lambda: NOW,
            ),
            aliases=TableAliasPointers(self.state),
            state=self.flush,
            send=self.send,
            acks=self.acks,
            metrics=WorkerMetrics(CollectorRegistry()),
            dlq_topic=DLQ,
            history_topic=HISTORY,
        )
        self.ready = asyncio.Event()
        self.ready.set()
        self.agent: Any = define_event_agent(self.app, self.topic, self.path, self.ready.wait)

    def close(self) -> None:
        """Close the event loop Faust made for its consumer thread (never started here).

        A stream reads ``app.consumer``, which builds aiokafka's consumer thread with a
        loop of its own; left open, it is a ResourceWarning at garbage collection.
        """
        consumer = self.app._consumer
        if consumer is not None:
            consumer._thread.thread_loop.close()

    def stored(self, path: str) -> Any:
        """The table's value of one collection, decoded (the store holds JSON bytes)."""
        raw = self.table.get(path)
        return None if raw is None else loads(raw)

    def take_changelog(self) -> list[Any]:
        """The table changelog records waiting in the (never started) producer's buffer."""
        pending = self.app.producer.buffer.pending
        out = []
        while not pending.empty():
            out.append(pending.get_nowait())
        return out


def delivered(fut: Any, offset: int = 0) -> None:
    """Resolve a changelog FutureMessage as Kafka's acknowledgement would."""
    message = fut.message
    topic = message.channel.get_topic_name()
    fut.set_result(RecordMetadata(topic, message.partition, TP(topic, message.partition), offset))


async def settle() -> None:
    """Give the agent and the ack chain time to act on what they have."""
    await asyncio.sleep(0.05)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """A fresh app and event agent per test (built inside the test's event loop)."""
    rig = Rig()
    yield rig
    rig.close()


async def test_agent_is_named_after_its_topic(rig: Rig) -> None:
    """define_event_agent registers one agent, named for its topic, on that topic."""
    assert rig.agent.name == agent_name(EVENTS)
    assert rig.agent.channel is rig.topic
    assert rig.agent.concurrency == 1


async def test_matching_event_is_acked_only_after_its_sends(rig: Rig) -> None:
    """A match queues its job, history record and alias changelog; the ack waits for all."""
    async with rig.agent.test_context() as agent_ctx:
        event = await agent_ctx.put(event_bytes(), key=KEY, partition=2)
        assert await until(lambda: bool(rig.send.to(ACTION_TOPICS["webhook"])), 2.0, every=0.005)
        [job] = rig.send.to(ACTION_TOPICS["webhook"])
        assert job.key == b"deploy-on-production"
        assert loads(job.value)["job_id"] == job_id("evt-1", "deploy-on-production", 1)
        history = rig.send.to(HISTORY)
        assert len(history) == 1
        assert rig.send.to(DLQ) == []

        [changelog] = rig.take_changelog()
        assert changelog.message.partition == 2
        changelog_topic = rig.table.changelog_topic.get_topic_name()
        assert changelog.message.channel.get_topic_name() == changelog_topic
        assert rig.stored(PATH) == {"latest": 3, "production": 3}

        await settle()
        assert not event.message.acked
        job.future.set_result(None)
        history[0].future.set_result(None)
        await settle()
        assert not event.message.acked, "acked before the alias changelog record"
        delivered(changelog)
        await asyncio.wait_for(rig.acks.drain(), 2)
        assert event.message.acked
        assert rig.acks.acked == {(EVENTS, 2): 1}
        assert rig.failures == []


async def test_commit_offset_moves_only_after_the_futures(rig: Rig) -> None:
    """With a consumer's message, Faust tracks it as unacked and commits past it only after."""
    app = rig.app
    # What the conductor does when it subscribes a topic with acks enabled.
    app.topics.acking_topics.add(EVENTS)
    tp = TP(EVENTS, 1)
    async with rig.agent.test_context() as agent_ctx:
        message = ConsumerMessage(
            EVENTS,
            1,
            41,
            0.0,
            0,
            None,
            KEY,
            event_bytes(event_id="evt-41"),
            None,
            generation_id=app.consumer_generation_id,
        )
        channel = agent_ctx.stream().channel
        await channel.put(await channel.decode(message))
        assert await until(lambda: bool(rig.send.records), 2.0, every=0.005)
        await settle()
        assert message in app.consumer.unacked
        assert not message.acked
        for sent in rig.send.records:
            sent.future.set_result(None)
        for fut in rig.take_changelog():
            delivered(fut)
        await asyncio.wait_for(rig.acks.drain(), 2)
        assert message.acked
        assert message not in app.consumer.unacked
        # The offset Faust's commit loop would commit for this partition.
        assert app.consumer._new_offset(tp) == 42
        assert rig.acks.acked == {(EVENTS, 1): 42}


async def test_failed_send_leaves_the_event_unacked_and_reports(rig: Rig) -> None:
    """A refused job: no ack, on_failure once; a later event is neither produced nor acked."""
    refused = RuntimeError("MessageSizeTooLargeError")
    async with rig.agent.test_context() as agent_ctx:
        first = await agent_ctx.put(event_bytes(), key=KEY, partition=0)
        assert await until(lambda: bool(rig.send.records), 2.0, every=0.005)
        [job] = rig.send.to(ACTION_TOPICS["webhook"])
        for sent in rig.send.records:
            if sent is job:
                sent.future.set_exception(refused)
            else:
                sent.future.set_result(None)
        for fut in rig.take_changelog():
            delivered(fut)
        await asyncio.wait_for(rig.acks.drain(), 2)
        assert rig.failures == [refused]
        assert rig.acks.failed
        assert not first.message.acked

        queued = len(rig.send.records)
        second = await agent_ctx.put(event_bytes(event_id="evt-2"), key=KEY, partition=0)
        await settle()
        assert len(rig.send.records) == queued
        assert rig.take_changelog() == []
        assert not second.message.acked
        assert rig.acks.acked == {}
        assert rig.failures == [refused]


async def test_invalid_event_goes_to_the_dead_letter_topic(rig: Rig) -> None:
    """Bytes that are not an event: one dead letter with a reason, then the ack."""
    async with rig.agent.test_context() as agent_ctx:
        event = await agent_ctx.put(b"{oops", key=b"some-key", partition=3)
        assert await until(lambda: bool(rig.send.records), 2.0, every=0.005)
        [dead] = rig.send.records
        assert dead.topic == DLQ
        assert dead.key == b"some-key"
        record = DeadLetter.model_validate_json(dead.value)
        assert record.error_code == DeadLetterCode.NOT_JSON
        assert record.reason
        assert record.original_value() == b"{oops"
        assert (record.source_topic, record.source_partition) == (EVENTS, 3)
        assert rig.take_changelog() == []

        await settle()
        assert not event.message.acked
        dead.future.set_result(None)
        await asyncio.wait_for(rig.acks.drain(), 2)
        assert event.message.acked
        assert rig.failures == []


async def test_later_batch_is_acked_after_the_earlier_one(rig: Rig) -> None:
    """Two batches: the second's sends acknowledged first still ack in offset order."""
    async with rig.agent.test_context() as agent_ctx:
        first = await agent_ctx.put(b"[]", key=b"k", partition=0)
        assert await until(lambda: len(rig.send.records) == 1, 2.0, every=0.005)
        second = await agent_ctx.put(b"{}", key=b"k", partition=0)
        assert await until(lambda: len(rig.send.records) == 2, 2.0, every=0.005)
        a, b = rig.send.records
        assert (first.message.offset, second.message.offset) == (0, 1)
        b.future.set_result(None)
        await settle()
        assert not first.message.acked
        assert not second.message.acked
        a.future.set_result(None)
        await asyncio.wait_for(rig.acks.drain(), 2)
        assert first.message.acked
        assert second.message.acked
        assert rig.acks.acked == {(EVENTS, 0): 2}
        assert rig.acks.batches_acked == 2


async def test_no_event_is_matched_before_ready(rig: Rig) -> None:
    """The agent waits for the automations to be loaded before it takes any event."""
    rig.ready.clear()
    async with rig.agent.test_context() as agent_ctx:
        # wait=False: the agent is not iterating its stream yet, so nothing would wake us.
        await agent_ctx.put(event_bytes(), key=KEY, partition=0, wait=False)
        await settle()
        assert rig.send.records == []
        rig.ready.set()
        assert await until(lambda: bool(rig.send.to(ACTION_TOPICS["webhook"])), 2.0, every=0.005)


# The artifact events of issue 14 (contract "More artifact events") through the agent.


async def resolve_all(rig: Rig) -> None:
    """Play Kafka: acknowledge every queued send and changelog record, then drain the acks."""
    for sent in rig.send.records:
        if not sent.future.done():
            sent.future.set_result(None)
    for fut in rig.take_changelog():
        delivered(fut)
    await asyncio.wait_for(rig.acks.drain(), 2)


async def test_remove_alias_job_carries_the_version_and_the_table_forgets_it() -> None:
    """ADD then REMOVE_ARTIFACT_ALIAS: the removal's job has previous_version 2, the table
    holds the alias no longer, and both events are acked after their sends."""
    removal = make_automation(
        id="rollback", event="REMOVE_ARTIFACT_ALIAS", filter={"alias": "production"}
    )
    rig = Rig([removal])
    try:
        async with rig.agent.test_context() as agent_ctx:
            added = await agent_ctx.put(
                event_bytes(event_id="add", artifact={"version": 2}), key=KEY, partition=1
            )
            await settle()
            assert rig.stored(PATH) == {"latest": 2, "production": 2}
            removed_event = event_dict(
                event_id="remove",
                event_type="REMOVE_ARTIFACT_ALIAS",
                artifact={"version": 2, "aliases": ["latest"]},
            )
            removed = await agent_ctx.put(event_bytes(**removed_event), key=KEY, partition=1)
            assert await until(lambda: bool(rig.send.to(ACTION_TOPICS["webhook"])), 2.0, 0.005)
            [job] = rig.send.to(ACTION_TOPICS["webhook"])
            body = loads(job.value)
            assert (body["event_type"], body["previous_version"]) == ("REMOVE_ARTIFACT_ALIAS", 2)
            assert body["job_id"] == job_id("remove", "rollback", 1)
            assert rig.stored(PATH) == {"latest": 2}
            await settle()
            assert not removed.message.acked
            await resolve_all(rig)
            assert added.message.acked
            assert removed.message.acked
            assert rig.failures == []
    finally:
        rig.close()


async def test_tag_event_fires_an_entity_automation_with_the_tag() -> None:
    """ADD_ARTIFACT_TAG on a project event: the entity-scoped automation renders ${tag}."""
    tagged = make_automation(
        id="tagged",
        event="ADD_ARTIFACT_TAG",
        scope={"type": "entity", "entity": "acme"},
        filter={"$or": [{"$and": [{"tag": {"$eq": "candidate"}}]}]},
        action={"type": "kafka", "topic": "tags", "payload": '{"tag": "${tag}"}'},
    )
    rig = Rig([tagged])
    try:
        async with rig.agent.test_context() as agent_ctx:
            for tag in ("baseline", "candidate"):
                raw = event_bytes(
                    event_id=tag,
                    event_type="ADD_ARTIFACT_TAG",
                    project="vision",
                    registry=None,
                    alias=None,
                    tag=tag,
                )
                await agent_ctx.put(raw, key=KEY, partition=0)
            assert await until(lambda: bool(rig.send.to("tags")), 2.0, 0.005)
            await settle()
            [job] = rig.send.to("tags")
            assert loads(loads(job.value)["action"]["payload"]) == {"tag": "candidate"}
            await resolve_all(rig)
            assert rig.failures == []
    finally:
        rig.close()


async def test_unlink_drops_the_pointers_of_the_unlinked_version() -> None:
    """UNLINK_ARTIFACT of v3 removes the aliases pointing to v3 from the alias table."""
    rig = Rig([make_automation(id="unlinks", event="UNLINK_ARTIFACT")])
    source = {"entity": "acme", "project": "vision", "collection": "mnist", "version": 1}
    try:
        async with rig.agent.test_context() as agent_ctx:
            await agent_ctx.put(event_bytes(event_id="add"), key=KEY, partition=3)
            unlink = event_bytes(
                event_id="unlink",
                event_type="UNLINK_ARTIFACT",
                alias=None,
                source=source,
                artifact={"aliases": []},
            )
            await agent_ctx.put(unlink, key=KEY, partition=3)
            assert await until(lambda: bool(rig.send.to(ACTION_TOPICS["webhook"])), 2.0, 0.005)
            assert rig.stored(PATH) == {}
            await resolve_all(rig)
            assert rig.failures == []
    finally:
        rig.close()


def _counter(path: EventPath, name: str, **labels: str) -> float:
    value = path.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_alias_pointers_over_the_cap_are_dropped_counted_and_the_event_goes_on(
    rig: Rig,
) -> None:
    """Issue 18: a collection keeps at most the cap; the drop is a metric, the job is sent."""
    rig.path.pipeline = Pipeline(
        AutomationIndex([make_automation()]), ACTION_TOPICS, 1 << 20, lambda: NOW, alias_cap=1
    )
    async with rig.agent.test_context() as agent_ctx:
        await agent_ctx.put(event_bytes(), key=KEY, partition=1)
        assert await until(lambda: bool(rig.send.to(ACTION_TOPICS["webhook"])), 2.0, every=0.005)
        # `latest` was set first, then `production` (the added alias): the cap keeps one.
        assert rig.stored(PATH) == {"production": 3}
        name = "hookstream_alias_pointers_dropped_total"
        assert _counter(rig.path, name, topic=EVENTS) == 1.0


async def test_a_dead_letter_whose_key_had_to_be_cut_is_sent_without_a_key(rig: Rig) -> None:
    """Issue 18: a key too large for the dead letter is kept in part, and not used as its key."""
    key = b"k" * (3 << 20)
    async with rig.agent.test_context() as agent_ctx:
        await agent_ctx.put(b"{oops", key=key, partition=0)
        assert await until(lambda: bool(rig.send.to(DLQ)), 2.0, every=0.005)
        [dead] = rig.send.to(DLQ)
        record = DeadLetter.model_validate_json(dead.value)
        assert dead.key is None
        assert record.key_truncated
        assert record.key_size == len(key)
        assert record.original_value() == b"{oops"
