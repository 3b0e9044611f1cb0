"""The run agent and the run-state table inside a real faust.App (Faust's agent test context).

Real: ``faust.App`` (memory store, web off, the broker URL points nowhere), the agent of
``define_run_agent`` and its ``noack_take`` stream, ``RunPath`` over a real
``RunPipeline``, ``OrderedAcks``, and ``TableRunStore`` over the real ``run-state``
Faust Table (``define_run_table``). Stand-ins: ``RunPath.send`` is
``app.testing.RecordingSend``; the producer is never started, so the table's changelog
records wait in Faust's producer buffer, where the test resolves them as Kafka would.
(See tests/functional/test_event_agent.py for how the test context delivers events.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from faust.types.tuples import TP, RecordMetadata
from prometheus_client import CollectorRegistry

from app.contract.automations import parse_automation
from app.contract.dead_letters import DeadLetter
from app.contract.jobs import parse_action_job
from app.contract.results import ActionResult, ResultStatus
from app.core.history import EVENT_TYPE_HEADER, ORIGIN_HEADER
from app.core.matching import AutomationIndex
from app.core.pipeline import Pipeline
from app.core.run_pipeline import RunPipeline, RunRules
from app.core.run_windows import RunMemory
from app.serialization import loads
from app.stream.acks import OrderedAcks
from app.stream.metrics import WorkerMetrics
from app.stream.runs import RunPath, TableRunStore, define_run_agent, define_run_table
from app.stream.topics import raw_topic
from app.testing import RecordingSend
from tests.factories import (
    ACTION_TOPICS,
    AVG_LOSS_FILTER,
    NOW,
    run_automation_dict,
    run_metric_bytes,
    run_state_bytes,
)
from tests.support import offline_app, until

RUNS = "run-events"
DLQ = "events.dlq"
HISTORY = "action-results"
PARTITIONS = 4
PATH = "acme/mnist/run-1"
KEY = PATH.encode()
LOW_LOSS = AVG_LOSS_FILTER


class Rig:
    """A faust.App with the run agent over run-events, as the worker defines it."""

    def __init__(
        self,
        *,
        clock: list[float] | None = None,
        flush_seconds: float = 0.0,
        send_changelog: Any = None,
        history_topic: str | None = None,
    ) -> None:
        self.app: Any = offline_app("hookstream-runs-functional")
        self.topic: Any = raw_topic(self.app, RUNS, PARTITIONS)
        self.table: Any = define_run_table(self.app, PARTITIONS)
        automations = [
            parse_automation(run_automation_dict(LOW_LOSS)),
            parse_automation(
                run_automation_dict(
                    {"run_state_filter": {"states": ["FINISHED"]}}, event="RUN_STATE", id="done"
                )
            ),
        ]
        index = AutomationIndex(automations)
        self.send = RecordingSend()
        self.failures: list[BaseException] = []
        self.acks = OrderedAcks(self.failures.append)
        self.clock = clock if clock is not None else [0.0]
        self.path = RunPath(
            runs=RunPipeline(
                Pipeline(index, ACTION_TOPICS, 1 << 20, lambda: NOW), RunRules(list(index))
            ),
            store=TableRunStore(self.table),
            send=self.send,
            acks=self.acks,
            metrics=WorkerMetrics(CollectorRegistry()),
            dlq_topic=DLQ,
            retention_seconds=60.0,
            flush_seconds=flush_seconds,
            send_changelog=send_changelog,
            clock=lambda: self.clock[0],
            history_topic=history_topic,
        )
        ready = asyncio.Event()
        ready.set()
        self.agent: Any = define_run_agent(self.app, self.topic, self.path, ready.wait)

    def close(self) -> None:
        """Close the loop Faust made for its (never started) consumer thread."""
        consumer = self.app._consumer
        if consumer is not None:
            consumer._thread.thread_loop.close()

    def take_changelog(self) -> list[Any]:
        """The table changelog records waiting in the never-started producer's buffer."""
        pending = self.app.producer.buffer.pending
        out = []
        while not pending.empty():
            out.append(pending.get_nowait())
        return out

    def deliver_all(self) -> list[Any]:
        """Play Kafka: acknowledge every record and changelog record queued so far."""
        for sent in self.send.records:
            if not sent.future.done():
                sent.future.set_result(None)
        changelog = self.take_changelog()
        for fut in changelog:
            message = fut.message
            topic = message.channel.get_topic_name()
            fut.set_result(
                RecordMetadata(topic, message.partition, TP(topic, message.partition), 0)
            )
        return changelog


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """A fresh app and run agent per test."""
    rig = Rig()
    yield rig
    rig.close()


async def settle() -> None:
    """Give the agent and the ack chain time to act."""
    await asyncio.sleep(0.05)


async def test_agent_reads_run_events_with_concurrency_one(rig: Rig) -> None:
    """define_run_agent registers one agent on the run-events topic, concurrency 1."""
    assert rig.agent.name == f"process-{RUNS}"
    assert rig.agent.channel is rig.topic
    assert rig.agent.concurrency == 1


async def test_firing_is_acked_after_its_job_and_the_run_state_changelog(rig: Rig) -> None:
    """A crossing queues one job; the batch's run state goes to the changelog of its partition."""
    async with rig.agent.test_context() as ctx:
        first = await ctx.put(run_metric_bytes(0, {"loss": 0.9}), key=KEY, partition=2)
        second = await ctx.put(run_metric_bytes(1, {"loss": 0.05}), key=KEY, partition=2)
        assert await until(lambda: bool(rig.send.to(ACTION_TOPICS["webhook"])), 2.0, 0.005)
        [job] = rig.send.to(ACTION_TOPICS["webhook"])
        assert parse_action_job(job.value).event_type == "RUN_METRIC"
        await settle()
        changelog = rig.take_changelog()
        assert {fut.message.partition for fut in changelog} == {2}
        memory = RunMemory.from_bytes(rig.table.data[PATH])
        assert memory.windows == {"loss": [0.9, 0.05]}
        assert memory.partition == 2
        assert not second.message.acked
        job.future.set_result(None)
        await settle()
        assert not second.message.acked, "acked before the run-state changelog record"
        for fut in changelog:
            topic = fut.message.channel.get_topic_name()
            fut.set_result(RecordMetadata(topic, 2, TP(topic, 2), 0))
        await asyncio.wait_for(rig.acks.drain(), 2)
        assert first.message.acked
        assert second.message.acked
        assert rig.failures == []


async def test_staying_true_fires_once_and_crossing_again_fires_again(rig: Rig) -> None:
    """The edge through the agent: one job per crossing, across batches."""
    values = [0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1]
    async with rig.agent.test_context() as ctx:
        for step, value in enumerate(values):
            await ctx.put(run_metric_bytes(step, {"loss": value}), key=KEY, partition=1)
            await settle()
            rig.deliver_all()
        await asyncio.wait_for(rig.acks.drain(), 2)
    jobs = [parse_action_job(r.value) for r in rig.send.to(ACTION_TOPICS["webhook"])]
    assert [job.event["step"] for job in jobs] == [2, 7]


async def test_invalid_record_goes_to_the_dead_letters_and_the_worker_goes_on(rig: Rig) -> None:
    """A NaN metric is a dead letter with a reason; the next record still fires."""
    async with rig.agent.test_context() as ctx:
        bad = run_metric_bytes(0, {"loss": 1}).replace(b"1}", b"NaN}")
        await ctx.put(bad, key=KEY, partition=0)
        await ctx.put(run_metric_bytes(1, {"loss": 0.1}), key=KEY, partition=0)
        await ctx.put(run_metric_bytes(2, {"loss": 0.1}), key=KEY, partition=0)
        assert await until(lambda: bool(rig.send.to(ACTION_TOPICS["webhook"])), 2.0, 0.005)
        [dead] = rig.send.to(DLQ)
        letter = DeadLetter.model_validate_json(dead.value)
        assert letter.error_code == "not_json"
        assert "NaN" in letter.reason
        assert dead.key == KEY


async def test_a_dropped_cache_reads_the_table_again(rig: Rig) -> None:
    """After partitions are revoked the memory comes back from the table: no refire."""
    async with rig.agent.test_context() as ctx:
        for step, value in enumerate([0.9, 0.1, 0.1]):
            await ctx.put(run_metric_bytes(step, {"loss": value}), key=KEY, partition=3)
        await settle()
        rig.deliver_all()
        assert len(rig.send.to(ACTION_TOPICS["webhook"])) == 1
        rig.path.store.forget()
        assert len(rig.path.store) == 0
        await ctx.put(run_metric_bytes(3, {"loss": 0.1}), key=KEY, partition=3)
        await settle()
        assert len(rig.send.to(ACTION_TOPICS["webhook"])) == 1, "still true: no new firing"
        assert len(rig.path.store) == 1


async def test_a_finished_run_expires_after_the_retention(rig: Rig) -> None:
    """A finished run's state is deleted (and tombstoned) once the retention has passed."""
    async with rig.agent.test_context() as ctx:
        await ctx.put(run_metric_bytes(0, {"loss": 0.9}), key=KEY, partition=1)
        await ctx.put(run_state_bytes("finished"), key=KEY, partition=1)
        assert await until(lambda: bool(rig.send.to(ACTION_TOPICS["webhook"])), 2.0, 0.005)
        await settle()
        rig.deliver_all()
        assert PATH in rig.table.data
        ended = RunMemory.from_bytes(rig.table.data[PATH]).ended_at
        assert ended is not None
        rig.clock[0] = ended + 61.0
        other = run_metric_bytes(0, {"loss": 0.9}, run={"id": "run-2"})
        await ctx.put(other, key=b"acme/mnist/run-2", partition=0)
        await settle()
        assert PATH not in rig.table.data
        tombstones = [f for f in rig.take_changelog() if f.message.value is None]
        # The table's str keys go through Faust's JSON key codec, as the alias table's do.
        assert [(loads(t.message.key), t.message.partition) for t in tombstones] == [(PATH, 1)]


async def test_timed_flush_writes_a_run_once_per_interval_and_holds_the_acks() -> None:
    """With flush_seconds, several batches of one run make one changelog record; acks wait."""
    rig = Rig(flush_seconds=0.3)
    try:
        async with rig.agent.test_context() as ctx:
            events = []
            for step in range(3):
                events.append(
                    await ctx.put(run_metric_bytes(step, {"loss": 0.9}), key=KEY, partition=2)
                )
                await settle()
            for sent in rig.send.records:
                sent.future.set_result(None)
            await settle()
            assert rig.take_changelog() == [], "nothing before the interval"
            assert not any(e.message.acked for e in events), "acks wait for the changelog"
            await asyncio.sleep(0.35)
            changelog = rig.deliver_all()
            assert len(changelog) == 1, "one record for the run, however many batches"
            assert RunMemory.from_bytes(changelog[0].message.value).windows == {"loss": [0.9, 0.9]}
            await asyncio.wait_for(rig.acks.drain(), 2)
            assert all(e.message.acked for e in events)
    finally:
        rig.close()


class DirectChangelog:
    """The worker's direct changelog send, recorded: (partition, run path, value, future)."""

    def __init__(self) -> None:
        self.records: list[tuple[int, str, bytes | None, asyncio.Future[Any]]] = []

    async def __call__(self, partition: int, path: str, value: bytes | None) -> Any:
        """Queue one changelog record; the test resolves its future."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.records.append((partition, path, value, future))
        return future


async def test_direct_changelog_sends_hold_the_acks_until_acknowledged() -> None:
    """With the worker's direct send, a batch is acked once its changelog records are."""
    direct = DirectChangelog()
    rig = Rig(send_changelog=direct)
    try:
        async with rig.agent.test_context() as ctx:
            event = await ctx.put(run_metric_bytes(0, {"loss": 0.9}), key=KEY, partition=3)
            assert await until(lambda: bool(direct.records), 2.0, 0.005)
            assert rig.take_changelog() == [], "nothing goes through Faust's buffer"
            [(partition, path, value, future)] = direct.records
            assert (partition, path) == (3, PATH)
            assert value is not None
            assert RunMemory.from_bytes(value).windows == {"loss": [0.9]}
            await settle()
            assert not event.message.acked
            topic = rig.table.changelog_topic.get_topic_name()
            future.set_result(RecordMetadata(topic, 3, TP(topic, 3), 12))
            await asyncio.wait_for(rig.acks.drain(), 2)
            assert event.message.acked
    finally:
        rig.close()


@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_a_run_record_as_a_cloudevent_fires_like_a_plain_one(rig: Rig, mode: str) -> None:
    """CloudEvents 1.0 on run-events, in binary (ce_ headers) and structured mode
    (content-type application/cloudevents+json), made by the `cloudevents` package: the
    data is the RUN_STATE record without event_type and occurred_at, which come from
    the CloudEvent's type and time; the run automation fires, and the job's event_id
    is the CloudEvent's id."""
    from cloudevents.core.bindings import kafka
    from cloudevents.core.v1.event import CloudEvent

    record = loads(run_state_bytes("finished"))
    del record["event_type"], record["occurred_at"]
    cloud = CloudEvent(
        attributes={
            "type": "com.example.runs.RUN_STATE",
            "source": "/trainer",
            "id": f"ce-run-{mode}",
            "time": datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
            "datacontenttype": "application/json",
        },
        data=record,
    )
    make = kafka.to_binary_event if mode == "binary" else kafka.to_structured_event
    message = make(cloud)
    headers = list(message.headers.items())
    async with rig.agent.test_context() as ctx:
        await ctx.put(message.value, key=KEY, partition=1, headers=headers)
        assert await until(lambda: bool(rig.send.to(ACTION_TOPICS["webhook"])), 2.0, 0.005)
    [job] = rig.send.to(ACTION_TOPICS["webhook"])
    parsed = parse_action_job(job.value)
    assert parsed.automation_id == "done"
    assert parsed.event_id == f"ce-run-{mode}"
    assert parsed.event["occurred_at"].startswith("2026-12-01T12:00:00")
    assert rig.send.to(DLQ) == []


async def test_run_firings_write_pending_history_before_the_ack() -> None:
    """Each firing's job has a worker PENDING record on action-results; the ack awaits both."""
    rig = Rig(history_topic=HISTORY)
    try:
        async with rig.agent.test_context() as ctx:
            await ctx.put(run_metric_bytes(0, {"loss": 0.9}), key=KEY, partition=2)
            second = await ctx.put(run_metric_bytes(1, {"loss": 0.05}), key=KEY, partition=2)
            state = await ctx.put(run_state_bytes("finished"), key=KEY, partition=2)
            assert await until(lambda: len(rig.send.to(HISTORY)) == 2, 2.0, 0.005)
            jobs = [parse_action_job(r.value) for r in rig.send.to(ACTION_TOPICS["webhook"])]
            records = rig.send.to(HISTORY)
            results = [ActionResult.model_validate_json(r.value) for r in records]
            assert [(r.job_id, r.status) for r in results] == [
                (job.job_id, ResultStatus.PENDING) for job in jobs
            ]
            marks = [dict(r.headers or []) for r in records]
            assert [m[EVENT_TYPE_HEADER] for m in marks] == [b"RUN_METRIC", b"RUN_STATE"]
            assert {m[ORIGIN_HEADER] for m in marks} == {b"worker"}
            assert [r.key for r in records] == [b"loss-watch", b"done"]
            for sent in rig.send.records:
                if sent.topic != HISTORY and not sent.future.done():
                    sent.future.set_result(None)
            for fut in rig.take_changelog():
                topic = fut.message.channel.get_topic_name()
                fut.set_result(RecordMetadata(topic, 2, TP(topic, 2), 0))
            await settle()
            assert not second.message.acked, "acked before its history record"
            rig.deliver_all()
            await asyncio.wait_for(rig.acks.drain(), 2)
            assert second.message.acked
            assert state.message.acked
    finally:
        rig.close()
