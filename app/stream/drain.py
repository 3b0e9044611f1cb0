"""Faust's drain loop with the per-record ``wait_first`` taken off the common case.

Faust's consumer hands every fetched record to the conductor through
``await self.wait_first(callback(message), self.suspend_flow.wait())``
(faust/transport/consumer.py, ``Consumer._drain_messages``): four tasks and an
``asyncio.wait`` per record, about 36 us on uvloop, a fifth of the worker's CPU per
event in S1 (docs/benchmarks.md). The race is only needed while the callback waits
(flow control stopped for a rebalance, the producer's buffer or the stream's queue
full): then ``suspend_flow`` must be able to abandon it.

``deliver`` steps the callback's coroutine once, in the drain task itself. Most records
finish there (their event is queued on the stream's channel) and nothing more is made.
A callback that would wait goes on, from where it stopped, inside Faust's own
``wait_first`` race, so a rebalance abandons it exactly as before. ``drain_messages``
is Faust 0.15.3's loop with that one call replaced; ``app.stream.transport`` installs
it on the worker's consumer.

One more check: Faust drops a fetched record below its read offset, which is the
offset of the record read last, or after a seek the next offset to read; so the record
read last passes when it is fetched again (aiokafka did that for the last record of a
partition once it had caught up, in about half the S1 runs, and its jobs came out
twice). The consumer keeps the offset it delivered last per partition and forgets it
at every seek; a record at that offset, with the read offset still on it, is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING

__all__ = ["Resumed", "deliver", "drain_messages"]

WaitFirst = Callable[..., Awaitable[Any]]


class Resumed:
    """An awaitable that goes on with a coroutine already stepped once.

    It passes what the awaiting task sends or throws (a result, a cancellation) to
    the coroutine, as ``await`` would have from the start.
    """

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def deliver(
    callback: Callable[[Any], Coroutine[Any, Any, Any]],
    message: Any,
    wait_first: WaitFirst,
    suspended: Callable[[], Coroutine[Any, Any, Any]],
) -> None:
    """Run ``callback(message)``; only if it would wait, race it against ``suspended()``.

    ``wait_first`` and ``suspended`` are the consumer's ``wait_first`` and its
    ``suspend_flow.wait``: the race Faust runs for every record.
    """
    coro = callback(message)
    try:
        yielded = coro.send(None)
    except StopIteration:
        return
    await wait_first(Resumed(coro, yielded), suspended())


async def drain_messages(consumer: Any, fetcher: Any) -> None:
    """Faust's ``Consumer._drain_messages`` (0.15.3), each record through ``deliver``.

    Everything else is Faust's as it is, but for the repeat check above: the read
    offsets, the gap tracking, the commit every ``broker_commit_every`` acks, a yield
    to the loop every 100 records, and the handling of a stopped consumer.
    """
    callback = consumer.callback
    getmany = consumer.getmany
    consumer_should_stop = consumer._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = consumer._read_offset.__getitem__
    set_read_offset = consumer._read_offset.__setitem__
    set_flag = consumer.diag.set_flag
    unset_flag = consumer.diag.unset_flag
    commit_every = consumer._commit_every
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    delivered = consumer.delivered_offsets
    wait_first = consumer.wait_first
    suspended = consumer.suspend_flow.wait
    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait = getmany(timeout=1.0)
            # getmany can return at once again and again, never yielding to the loop.
            await consumer.sleep(0)
            if not consumer.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if offset == r_offset and delivered.get(tp) == offset:
                        # Fetched again, though read: see the module docstring.
                        continue
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await consumer._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and consumer._n_acked >= commit_every:
                            consumer._n_acked = 0
                            await consumer.commit()
                        await deliver(callback, message, wait_first, suspended)
                        set_read_offset(tp, offset)
                        delivered[tp] = offset
                unset_flag(CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            consumer.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            consumer.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        consumer.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)
