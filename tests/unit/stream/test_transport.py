"""The worker's Faust transport: the lenient consumer is what the App consumes through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import faust
from faust.types import TP

from app.stream.transport import (
    LenientConsumer,
    LenientConsumerThread,
    LenientTransport,
    install,
)


def test_install_gives_the_app_the_lenient_transport_and_consumer() -> None:
    """After install, the App's consumer is the lenient one, with the lenient thread."""
    app = faust.App(
        "hookstream-transport-test",
        broker="kafka://127.0.0.1:9",
        store="memory://",
        autodiscover=False,
        web_enabled=False,
    )
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
