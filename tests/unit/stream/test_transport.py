"""The worker's Faust transport: the lenient consumer is what the App consumes through."""

from __future__ import annotations

import faust

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
