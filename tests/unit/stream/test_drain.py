"""The drain loop: records reach the conductor without a race per record, and only once."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from app.stream.drain import Resumed, deliver, drain_messages

TOPIC = "registry-events"


class Races:
    """Stands in for the consumer's wait_first: counts the races and runs them as Faust does."""

    def __init__(self) -> None:
        self.count = 0

    async def wait_first(self, *awaitables: Awaitable[Any]) -> list[Any]:
        """Run the awaitables until the first finishes, cancel the rest (mode's wait_first)."""
        self.count += 1
        tasks = [asyncio.ensure_future(a) for a in awaitables]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return [task.result() for task in done]
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()


async def test_a_callback_that_does_not_wait_runs_without_a_race() -> None:
    """The common case: the record is handled in the drain task, no wait_first, no task."""
    races, seen = Races(), []
    suspend = asyncio.Event()

    async def callback(message: Any) -> None:
        seen.append(message)

    tasks_before = len(asyncio.all_tasks())
    await deliver(callback, "m1", races.wait_first, suspend.wait)
    assert seen == ["m1"]
    assert races.count == 0
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_callback_that_waits_finishes_inside_the_race() -> None:
    """A callback that would wait (a full queue) goes on where it stopped, once, to its end."""
    races, steps = Races(), []
    suspend, room = asyncio.Event(), asyncio.Event()

    async def callback(message: Any) -> None:
        steps.append("started")
        await room.wait()
        steps.append("delivered")

    delivering = asyncio.ensure_future(deliver(callback, "m1", races.wait_first, suspend.wait))
    await asyncio.sleep(0.01)
    assert steps == ["started"]
    room.set()
    await asyncio.wait_for(delivering, 1)
    assert steps == ["started", "delivered"]
    assert races.count == 1


async def test_a_suspended_flow_abandons_a_waiting_callback() -> None:
    """As in Faust: while the callback waits, suspend_flow wins and the callback is cancelled."""
    races, outcome = Races(), []
    suspend = asyncio.Event()

    async def callback(message: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    delivering = asyncio.ensure_future(deliver(callback, "m1", races.wait_first, suspend.wait))
    await asyncio.sleep(0.01)
    suspend.set()
    await asyncio.wait_for(delivering, 1)
    assert outcome == ["cancelled"]


async def test_a_callback_error_reaches_the_drain_loop() -> None:
    """An exception, before or after a wait, propagates as wait_first would propagate it."""
    races = Races()
    suspend = asyncio.Event()

    async def at_once(message: Any) -> None:
        raise ValueError("undecodable")

    async def after_a_wait(message: Any) -> None:
        await asyncio.sleep(0)
        raise KeyError("gone")

    with pytest.raises(ValueError, match="undecodable"):
        await deliver(at_once, "m1", races.wait_first, suspend.wait)
    with pytest.raises(KeyError, match="gone"):
        await deliver(after_a_wait, "m2", races.wait_first, suspend.wait)


async def test_resumed_passes_results_and_returns_the_coroutines_value() -> None:
    """Resumed continues a stepped coroutine: its await resolves, its return value comes back."""
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def work() -> int:
        return await future * 2

    coro = work()
    yielded = coro.send(None)
    asyncio.get_running_loop().call_later(0.01, future.set_result, 21)
    assert await Resumed(coro, yielded) == 42


class Diag:
    """The consumer's diagnostic flags."""

    def set_flag(self, flag: str) -> None:
        """Nothing to record."""

    def unset_flag(self, flag: str) -> None:
        """Nothing to record."""


class FakeConsumer:
    """Faust's consumer, as far as its drain loop goes: a batch of records per fetch."""

    consumer_stopped_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, batches: list[list[tuple[TP, int]]]) -> None:
        self.batches = batches
        self.delivered: list[tuple[TP, int]] = []
        self.delivered_offsets: dict[Any, int] = {}
        # Faust's own is a defaultdict of None.
        self._read_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._stopped = asyncio.Event()
        self._commit_every: int | None = None
        self._n_acked = 0
        self.should_stop = False
        self.diag = Diag()
        self.suspend_flow = asyncio.Event()
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: True))
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=False))
        self.log = SimpleNamespace(info=print, exception=print)
        self.races = Races()
        self.wait_first = self.races.wait_first
        self.gaps: list[tuple[TP, int, int]] = []

    async def callback(self, message: Any) -> None:
        """The conductor: records what it was given."""
        self.delivered.append((message.tp, message.offset))

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        """One batch per call; the consumer stops once all were fetched."""
        if not self.batches:
            self._stopped.set()
            return
        for tp, offset in self.batches.pop(0):
            yield tp, SimpleNamespace(tp=tp, topic=tp.topic, offset=offset)

    async def sleep(self, seconds: float) -> None:
        """The service's sleep."""
        await asyncio.sleep(seconds)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        self.gaps.append((tp, offset_from, offset_to))

    async def commit(self) -> None:
        """Not reached: commit_every is None."""


async def drain(consumer: FakeConsumer) -> None:
    """Run the drain loop until the fake consumer has no batch left."""
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    await asyncio.wait_for(drain_messages(consumer, fetcher), 2)


async def test_every_fetched_record_is_delivered_in_order_without_races() -> None:
    """Two partitions, two fetches: each record once, in fetch order, and no wait_first at all."""
    p0, p1 = TP(TOPIC, 0), TP(TOPIC, 1)
    consumer = FakeConsumer([[(p0, 0), (p1, 0), (p0, 1)], [(p1, 1), (p0, 2)]])
    await drain(consumer)
    assert consumer.delivered == [(p0, 0), (p1, 0), (p0, 1), (p1, 1), (p0, 2)]
    assert consumer._read_offset == {p0: 2, p1: 1}
    assert consumer.races.count == 0


async def test_the_record_read_last_is_not_delivered_again_when_fetched_again() -> None:
    """Faust's read-offset check lets the last record read through again; the drain does not."""
    p0 = TP(TOPIC, 0)
    consumer = FakeConsumer([[(p0, 5), (p0, 6)], [(p0, 6), (p0, 7)], [(p0, 4)]])
    await drain(consumer)
    assert consumer.delivered == [(p0, 5), (p0, 6), (p0, 7)]


async def test_after_a_seek_the_record_at_the_read_offset_is_delivered() -> None:
    """A seek forgets the delivered offset: the record at the sought offset is read again."""
    p0 = TP(TOPIC, 0)
    consumer = FakeConsumer([[(p0, 5), (p0, 6)]])
    await drain(consumer)
    # What LenientConsumer.seek does before Faust sets the read offset to the target.
    consumer.delivered_offsets.pop(p0, None)
    consumer._read_offset[p0] = 6
    consumer.batches = [[(p0, 6), (p0, 7)]]
    consumer._stopped.clear()
    await drain(consumer)
    assert consumer.delivered == [(p0, 5), (p0, 6), (p0, 6), (p0, 7)]


async def test_a_gap_in_offsets_is_handed_to_faust() -> None:
    """Offsets that skip (compaction, transaction markers) are recorded as Faust's gaps."""
    p0 = TP(TOPIC, 0)
    consumer = FakeConsumer([[(p0, 3), (p0, 7)]])
    await drain(consumer)
    assert consumer.gaps == [(p0, 4, 7)]
    assert consumer.delivered == [(p0, 3), (p0, 7)]
