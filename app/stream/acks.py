"""Ordered manual acknowledgement: stronger than Faust's at-least-once default.

Faust acks an event when an agent moves past it, even when a send it made failed
after the client's retries (the failure is only logged) or the agent raised
(faust-streaming #315); and its commit skips a gap at the head of a partition's acked
offsets (#606). The event agent therefore takes its events unacked (``noack_take``)
and hands each batch here with the futures of every record the batch produced:

- a batch's events are acked only once Kafka has acknowledged all of those records,
  and only after every earlier batch was acked (one chain, so acks reach Faust's
  consumer in offset order within each partition);
- the first refused record breaks the chain: that batch and every later one stay
  unacked (Faust never commits them) and ``on_failure`` is called once, which stops
  the worker; a restart processes them again, with the same job ids.

The next batch is decided while the previous one's records are in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["OrderedAcks"]

log = logging.getLogger(__name__)


class OrderedAcks:
    """One chain of batch acknowledgements (one per agent; see the module docstring)."""

    def __init__(self, on_failure: Callable[[BaseException], None]) -> None:
        self._on_failure = on_failure
        self._last: asyncio.Future[None] | None = None
        self.failure: BaseException | None = None
        # Next offset acked per (topic, partition): the committable position.
        self.acked: dict[tuple[str, int], int] = {}
        self.batches_acked = 0

    @property
    def failed(self) -> bool:
        """Whether a produced record was refused (nothing is acked from then on)."""
        return self.failure is not None

    def submit(self, events: Sequence[Any], sent: Sequence[Awaitable[Any]]) -> None:
        """Ack ``events`` once ``sent`` are all acknowledged and every earlier batch is acked."""
        if self.failure is not None:
            return
        future = asyncio.ensure_future(self._ack(self._last, events, sent))
        future.add_done_callback(self._done)
        self._last = future

    async def _ack(
        self,
        previous: asyncio.Future[None] | None,
        events: Sequence[Any],
        sent: Sequence[Awaitable[Any]],
    ) -> None:
        if previous is not None:
            # A failure of an earlier batch propagates: this one is not acked either.
            await previous
        if sent:
            await asyncio.gather(*sent)
        acked = self.acked
        for event in events:
            message = event.message
            event.ack()
            acked[(message.topic, message.partition)] = message.offset + 1
        self.batches_acked += 1

    def _done(self, future: asyncio.Future[None]) -> None:
        if future.cancelled() or self.failure is not None:
            return
        exc = future.exception()
        if exc is None:
            return
        self.failure = exc
        log.critical(
            "a job, dead letter or state record was refused by Kafka; its batch and every "
            "later one stay unacknowledged and the worker stops: %r",
            exc,
        )
        self._on_failure(exc)

    async def drain(self) -> None:
        """Wait until every batch submitted so far is acked (or the chain failed)."""
        last = self._last
        if last is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(last)
