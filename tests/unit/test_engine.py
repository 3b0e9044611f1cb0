"""Engine: offsets become committable only after their records are stored, in order.

The engine runs here over a fake producer and consumer (the Kafka seams it uses: send,
assignment, seek, commit); the real-broker behaviour is in tests/integration and
tests/faults.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from app.engine import Engine
from app.matching import AutomationIndex
from app.metrics import WorkerMetrics
from app.pipeline import Pipeline
from app.serialization import loads
from app.settings import Settings
from tests.factories import event_bytes, make_automation

SETTINGS = Settings(app_id="unit", history_enabled=False)
TP = TopicPartition(SETTINGS.registry_events_topic, 0)
TP1 = TopicPartition(SETTINGS.registry_events_topic, 1)


@dataclass
class Record:
    """The fields of an aiokafka ConsumerRecord the engine reads."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = b"k"
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class FakeProducer:
    """send() queues; each record's delivery is a future the test resolves."""

    sent: list[tuple[str, bytes | None, bytes, int | None]] = field(default_factory=list)
    futures: list[asyncio.Future[None]] = field(default_factory=list)

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Any = None,
    ) -> asyncio.Future[None]:
        self.sent.append((topic, key, value, partition))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def deliver(self, start: int = 0, stop: int | None = None) -> None:
        for future in self.futures[start:stop]:
            if not future.done():
                future.set_result(None)


@dataclass
class FakeConsumer:
    """The consumer calls the engine makes outside the fetch loop."""

    assigned: set[TopicPartition] = field(default_factory=set)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


class FakeApp:
    """Records crash() calls."""

    def __init__(self) -> None:
        self.crashed: list[BaseException] = []

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


class FakeWorker:
    """What the engine reads from app.worker.Hookstream."""

    def __init__(self) -> None:
        self.settings = SETTINGS
        self.metrics = WorkerMetrics(CollectorRegistry())
        self.pipeline = Pipeline(
            AutomationIndex([make_automation()]), SETTINGS.action_topics, 1 << 20
        )
        self.app = FakeApp()


def _engine(assigned: set[TopicPartition]) -> tuple[Engine, FakeProducer, FakeConsumer]:
    """An Engine wired to a fake producer and consumer, owning `assigned`."""
    hs: Any = FakeWorker()
    engine = Engine(hs)
    producer, consumer = FakeProducer(), FakeConsumer(set(assigned))
    engine.producer = producer  # type: ignore[assignment]  # a fake of the two calls used
    engine.consumer = consumer  # type: ignore[assignment]  # a fake of the calls used
    engine.assigned = frozenset(assigned)
    engine.aliases.replace({tp.partition: {} for tp in assigned})
    return engine, producer, consumer


def _records(tp: TopicPartition, first: int, count: int) -> list[Record]:
    """`count` valid event records of `tp` from offset `first`."""
    return [
        Record(tp.topic, tp.partition, first + i, event_bytes(event_id=f"e{first + i}"))
        for i in range(count)
    ]


async def _settle() -> None:
    """Let pending tasks run a few loop turns."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_offsets_wait_for_their_records() -> None:
    """A batch's offsets are not acknowledged (so not committed) before its jobs are stored."""
    engine, producer, consumer = _engine({TP})
    await engine._handle({TP: _records(TP, 0, 3)})
    await _settle()
    jobs = [s for s in producer.sent if s[0] == SETTINGS.webhook_topic]
    assert len(jobs) == 3
    assert engine.acked == {}
    await engine._commit(force=True)
    assert consumer.commits == []
    producer.deliver()
    await _settle()
    assert engine.acked == {TP: 3}
    await engine._commit(force=True)
    assert consumer.commits == [{TP: 3}]


async def test_later_batch_waits_for_the_earlier_one() -> None:
    """Acknowledgements are chained: a later batch stored first is not committable alone."""
    engine, producer, _ = _engine({TP})
    await engine._handle({TP: _records(TP, 0, 2)})
    first = len(producer.futures)
    await engine._handle({TP: _records(TP, 2, 2)})
    producer.deliver(first)  # the second batch's records only
    await _settle()
    assert engine.acked == {}
    producer.deliver(0, first)
    await _settle()
    assert engine.acked == {TP: 4}


async def test_a_refused_record_stops_the_worker_and_commits_nothing() -> None:
    """A delivery error crashes the app; neither that batch nor later ones are acknowledged."""
    engine, producer, consumer = _engine({TP})
    await engine._handle({TP: _records(TP, 0, 1)})
    first = len(producer.futures)
    await engine._handle({TP: _records(TP, 1, 1)})
    producer.futures[0].set_exception(RuntimeError("broker said no"))
    producer.deliver(first)
    await _settle()
    assert engine.acked == {}
    assert [str(e) for e in engine.hs.app.crashed] == ["broker said no"]
    await engine._commit(force=True)
    assert consumer.commits == []


async def test_records_below_the_next_offset_are_skipped() -> None:
    """A batch fetched again after a rebalance is not processed twice."""
    engine, producer, _ = _engine({TP})
    await engine._handle({TP: _records(TP, 0, 4)})
    sent = len(producer.sent)
    await engine._handle({TP: _records(TP, 2, 4)})  # offsets 2..5: only 4 and 5 are new
    jobs = [loads(v)["event"]["event_id"] for t, _, v, _ in producer.sent[sent:]
            if t == SETTINGS.webhook_topic]
    assert jobs == ["e4", "e5"]
    assert engine.next_offset == {TP: 6}


async def test_a_partition_not_yet_restored_is_sought_back() -> None:
    """Records of a partition whose state is not restored are not processed and are read again."""
    engine, producer, consumer = _engine({TP})
    consumer.assigned.add(TP1)  # assigned by the group, on_assigned not finished
    await engine._handle({TP1: _records(TP1, 7, 2)})
    assert producer.sent == []
    assert consumer.seeks == [(TP1, 7)]
    assert TP1 not in engine.next_offset


async def test_a_revoked_partition_is_dropped_without_a_seek() -> None:
    """Records of a partition no longer assigned are left to its new owner."""
    engine, producer, consumer = _engine({TP})
    await engine._handle({TP1: _records(TP1, 0, 2)})
    assert producer.sent == []
    assert consumer.seeks == []


async def test_alias_changes_are_written_once_per_key_on_the_event_partition() -> None:
    """Three moves of one alias in a batch write one changelog record, to partition 1."""
    engine, producer, _ = _engine({TP1})
    batch = [
        Record(TP1.topic, 1, i, event_bytes(event_id=f"e{i}", artifact={"version": v}))
        for i, v in enumerate((1, 2, 3))
    ]
    await engine._handle({TP1: batch})
    changelog = [s for s in producer.sent if s[0] == SETTINGS.alias_pointers_topic]
    assert len(changelog) == 1
    _topic, key, value, partition = changelog[0]
    assert partition == 1
    assert key is not None
    assert loads(value) == {"latest": 3, "production": 3}


async def test_revocation_commits_what_is_stored_and_forgets_state() -> None:
    """on_revoked waits for the batches in flight, commits them and drops the pointers."""
    engine, producer, consumer = _engine({TP})
    await engine._handle({TP: _records(TP, 0, 2)})
    revoke = asyncio.ensure_future(engine.on_revoked({TP}))
    await _settle()
    assert not revoke.done()
    producer.deliver()
    await revoke
    assert consumer.commits == [{TP: 2}]
    assert engine.assigned == frozenset()
    assert engine.aliases.partitions == frozenset()
    assert engine.rebalancing


@pytest.mark.parametrize("history", [True, False])
async def test_execution_history_records_follow_the_setting(history: bool) -> None:
    """With history on, each match also queues an action-results record."""
    engine, producer, _ = _engine({TP})
    engine.settings = Settings(app_id="unit", history_enabled=history)
    await engine._handle({TP: _records(TP, 0, 1)})
    results = [s for s in producer.sent if s[0] == SETTINGS.action_results_topic]
    assert len(results) == (1 if history else 0)
