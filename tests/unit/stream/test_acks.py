"""OrderedAcks: a batch is acked after its sends and every earlier batch; never after a failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from app.stream.acks import OrderedAcks

Position = tuple[str, int, int]


@dataclass(frozen=True)
class FakeMessage:
    """What OrderedAcks reads of a Faust message."""

    topic: str
    partition: int
    offset: int


@dataclass
class FakeEvent:
    """A Faust event whose ``ack()`` appends its position to a shared log."""

    message: FakeMessage
    log: list[Position] = field(repr=False)

    def ack(self) -> bool:
        """Record the ack (Faust's returns whether this was the final ack)."""
        m = self.message
        self.log.append((m.topic, m.partition, m.offset))
        return True


class Recorder:
    """An ack log, event builder and on_failure callback for one test."""

    def __init__(self) -> None:
        self.log: list[Position] = []
        self.failures: list[BaseException] = []
        self.acks = OrderedAcks(self.failures.append)

    def events(self, *positions: tuple[int, int], topic: str = "t") -> list[FakeEvent]:
        """Events at these (partition, offset) positions."""
        return [FakeEvent(FakeMessage(topic, p, o), self.log) for p, o in positions]


def pending(n: int) -> list[asyncio.Future[None]]:
    """``n`` unresolved futures standing in for Kafka acknowledgements."""
    loop = asyncio.get_running_loop()
    return [loop.create_future() for _ in range(n)]


async def settle() -> None:
    """Let every ready callback and task step run (the chain advances without I/O)."""
    for _ in range(10):
        await asyncio.sleep(0)


def positions(events: Sequence[FakeEvent]) -> list[Position]:
    """The log entries these events produce when acked."""
    return [(e.message.topic, e.message.partition, e.message.offset) for e in events]


async def test_batch_waits_for_all_its_futures() -> None:
    """Nothing is acked until every send future of the batch has succeeded."""
    r = Recorder()
    batch = r.events((0, 0), (0, 1))
    f1, f2 = pending(2)
    r.acks.submit(batch, [f1, f2])
    await settle()
    assert r.log == []
    f1.set_result(None)
    await settle()
    assert r.log == []
    assert r.acks.acked == {}
    f2.set_result(None)
    await r.acks.drain()
    assert r.log == positions(batch)
    assert r.acks.acked == {("t", 0): 2}
    assert r.acks.batches_acked == 1
    assert not r.acks.failed
    assert r.failures == []


async def test_later_batch_resolved_first_waits_for_the_earlier() -> None:
    """Batch N+1's sends succeeding first does not ack it before batch N."""
    r = Recorder()
    first, second = r.events((0, 0)), r.events((0, 1))
    f_first, f_second = pending(2)
    r.acks.submit(first, [f_first])
    r.acks.submit(second, [f_second])
    f_second.set_result(None)
    await settle()
    assert r.log == []
    assert r.acks.batches_acked == 0
    f_first.set_result(None)
    await r.acks.drain()
    assert r.log == positions(first) + positions(second)
    assert r.acks.acked == {("t", 0): 2}
    assert r.acks.batches_acked == 2


async def test_acks_reach_each_partition_in_offset_order() -> None:
    """Batches spanning partitions, resolved in reverse, ack every partition in offset order."""
    r = Recorder()
    batches = [
        r.events((0, 0), (1, 0), (0, 1)),
        r.events((1, 1), (2, 0)),
        r.events((0, 2), (2, 1), (1, 2)),
        r.events((2, 2)),
    ]
    futures = pending(len(batches))
    for batch, fut in zip(batches, futures, strict=True):
        r.acks.submit(batch, [fut])
    for fut in reversed(futures):
        fut.set_result(None)
        await settle()
    await r.acks.drain()
    assert len(r.log) == sum(len(b) for b in batches)
    for partition in (0, 1, 2):
        offsets = [o for _, p, o in r.log if p == partition]
        assert offsets == [0, 1, 2]
    assert r.acks.acked == {("t", 0): 3, ("t", 1): 3, ("t", 2): 3}


async def test_failed_future_stops_the_chain() -> None:
    """A refused record: its batch and all later ones stay unacked, on_failure runs once."""
    r = Recorder()
    b0, b1, b2 = r.events((0, 0)), r.events((0, 1)), r.events((0, 2))
    f0, f1, f2 = pending(3)
    r.acks.submit(b0, [f0])
    r.acks.submit(b1, [f1])
    r.acks.submit(b2, [f2])
    refused = RuntimeError("MessageSizeTooLarge")
    f2.set_result(None)
    f1.set_exception(refused)
    f0.set_result(None)
    await asyncio.wait_for(r.acks.drain(), 1)
    assert r.log == positions(b0)
    assert r.failures == [refused]
    assert r.acks.failed
    assert r.acks.failure is refused
    assert r.acks.acked == {("t", 0): 1}
    assert r.acks.batches_acked == 1

    # Submitted after the failure: ignored, even with nothing to wait for.
    r.acks.submit(r.events((0, 3)), [])
    await asyncio.wait_for(r.acks.drain(), 1)
    assert r.log == positions(b0)
    assert r.acks.acked == {("t", 0): 1}
    assert r.failures == [refused]


async def test_on_failure_called_once_when_several_futures_fail() -> None:
    """Two refused records in two batches: on_failure sees only the first exception."""
    r = Recorder()
    f0, f1 = pending(2)
    r.acks.submit(r.events((0, 0)), [f0])
    r.acks.submit(r.events((0, 1)), [f1])
    first, second = RuntimeError("first"), RuntimeError("second")
    f1.set_exception(second)
    f0.set_exception(first)
    await asyncio.wait_for(r.acks.drain(), 1)
    assert r.failures == [first]
    assert r.acks.failure is first
    assert r.log == []
    assert r.acks.acked == {}


async def test_drain_returns_after_failure_of_a_pending_batch() -> None:
    """drain() waits for the chain and returns (does not raise) when it failed meanwhile."""
    r = Recorder()
    [fut] = pending(1)
    r.acks.submit(r.events((0, 0)), [fut])
    drain = asyncio.ensure_future(r.acks.drain())
    await settle()
    assert not drain.done()
    fut.set_exception(OSError("broker gone"))
    await asyncio.wait_for(drain, 1)
    assert drain.exception() is None
    assert r.acks.failed
    assert len(r.failures) == 1


async def test_batch_without_sends_is_acked_after_the_previous() -> None:
    """A batch that produced nothing still waits for the earlier batch."""
    r = Recorder()
    b0, b1 = r.events((0, 0)), r.events((0, 1))
    [f0] = pending(1)
    r.acks.submit(b0, [f0])
    r.acks.submit(b1, [])
    await settle()
    assert r.log == []
    f0.set_result(None)
    await r.acks.drain()
    assert r.log == positions(b0) + positions(b1)
    assert r.acks.acked == {("t", 0): 2}


async def test_first_batch_without_sends_is_acked_at_once() -> None:
    """With no earlier batch and no sends, the batch is acked on the next loop turns."""
    r = Recorder()
    batch = r.events((3, 7), topic="artifact-events")
    r.acks.submit(batch, [])
    await settle()
    assert r.log == positions(batch)
    assert r.acks.acked == {("artifact-events", 3): 8}


async def test_drain_with_nothing_submitted_returns() -> None:
    """drain() on a fresh chain returns at once."""
    r = Recorder()
    await asyncio.wait_for(r.acks.drain(), 1)
    assert r.acks.batches_acked == 0
    assert not r.acks.failed


@pytest.mark.parametrize("index", [0, 1])
async def test_failure_of_one_future_of_a_batch_blocks_the_batch(index: int) -> None:
    """Either of a batch's futures failing leaves all of the batch's events unacked."""
    r = Recorder()
    futures = pending(2)
    r.acks.submit(r.events((0, 0), (1, 0)), futures)
    futures[index].set_exception(RuntimeError("refused"))
    futures[1 - index].set_result(None)
    await asyncio.wait_for(r.acks.drain(), 1)
    assert r.log == []
    assert r.acks.failed
    assert len(r.failures) == 1
