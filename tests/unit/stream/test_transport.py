"""The worker's Faust transport: the lenient consumer is what the App consumes through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

from faust.types import TP

from app.stream.transport import (
    LenientConsumer,
    LenientConsumerThread,
    LenientTransport,
    install,
)
from tests.support import offline_app


def test_install_gives_the_app_the_lenient_transport_and_consumer() -> None:
    """After install, the App's consumer is the lenient one, with the lenient thread."""
    app = offline_app("hookstream-transport-test")
    install(app)
    assert isinstance(app.transport, LenientTransport)
    consumer = app.consumer
    assert isinstance(consumer, LenientConsumer)
    thread = consumer._new_consumer_thread()
    try:
        assert isinstance(thread, LenientConsumerThread)
    finally:
        thread.thread_loop.close()
        consumer._thread.thread_loop.close()


class RecordingConsumer:
    """aiokafka's consumer, as far as seeking goes."""

    def __init__(self) -> None:
        self.seeks: list[tuple[TP, int]] = []

    def seek(self, partition: TP, offset: int) -> None:
        """Record the seek."""
        self.seeks.append((partition, offset))


class FakeThread:
    """The consumer thread: records what was handed to it to run on its own loop."""

    def __init__(self) -> None:
        self.consumer = RecordingConsumer()
        self.on_thread: list[str] = []

    def _ensure_consumer(self) -> RecordingConsumer:
        return self.consumer

    async def call_thread(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """What ServiceThread.call_thread does, minus the thread: run fn, noting its name."""
        self.on_thread.append(fn.__name__)
        return await fn(*args)

    def seek(self, partition: TP, offset: int) -> None:
        """Faust's own seek, from the caller's thread: must not be used."""
        raise AssertionError("seeked from the main thread")

    async def seek_on_thread(self, partition: TP, offset: int) -> None:
        """The lenient thread's own method, on this stand-in."""
        await LenientConsumerThread.seek_on_thread(cast(Any, self), partition, offset)


async def test_a_seek_runs_on_the_consumer_thread() -> None:
    """Consumer._seek hands aiokafka's seek to the consumer thread instead of calling it."""
    thread = FakeThread()
    holder = SimpleNamespace(_thread=thread)
    tp = TP("registry-events", 2)
    await LenientConsumer._seek(cast(Any, holder), tp, 7)
    assert thread.on_thread == ["seek_on_thread"]
    assert thread.consumer.seeks == [(tp, 7)]


async def test_every_seek_forgets_the_delivered_offsets_it_moves() -> None:
    """seek, seek_wait and seek_to_committed clear what the drain loop delivered last."""
    app = offline_app("hookstream-transport-seek-test")
    install(app)
    consumer = cast(LenientConsumer, app.consumer)
    p0, p1, p2 = TP("registry-events", 0), TP("registry-events", 1), TP("registry-events", 2)
    moved: list[Any] = []

    async def _seek(partition: TP, offset: int) -> None:
        moved.append((partition, offset))

    async def seek_wait(partitions: Any) -> None:
        moved.append(dict(partitions))

    async def seek_to_committed() -> dict[TP, int]:
        moved.append("committed")
        return {}

    thread = SimpleNamespace(seek_wait=seek_wait, seek_to_committed=seek_to_committed)
    consumer._thread.thread_loop.close()
    consumer._seek = _seek  # type: ignore[method-assign]  # no broker: record the seek
    consumer._thread = thread  # type: ignore[assignment]  # no broker: record the calls
    consumer.delivered_offsets.update({p0: 5, p1: 7, p2: 9})
    await consumer.seek(p0, 5)
    assert consumer.delivered_offsets == {p1: 7, p2: 9}
    assert consumer._read_offset[p0] == 5
    await consumer.seek_wait({p1: 3})
    assert consumer.delivered_offsets == {p2: 9}
    await consumer.seek_to_committed()
    assert consumer.delivered_offsets == {}
    assert moved == [(p0, 5), {p1: 3}, "committed"]
