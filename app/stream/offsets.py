"""Re-read what Faust skipped on partitions that have no committed offset yet.

During a rebalance's recovery Faust suspends flow control: events already fetched for
the stream partitions are skipped and the channel queues are cleared when the flow
resumes, and Faust then seeks each partition back to its committed offset so that
they are fetched again. aiokafka's ``seek_to_committed`` seeks only where the
committed offset is above 0, so on a partition with no commit (a new group, or a
partition that never had an event acked) or a commit of 0 the skipped events were
never fetched again: lost without a trace (seen on a fresh worker over pre-filled
topics, tests/integration/test_worker.py). At every rebalance's end this seeks such
partitions to their earliest offset through Faust's own ``Consumer.seek``, which also
resets Faust's read position so the re-fetched events are not dropped as already read.
Events processed between the resume and the seek are processed again, with the same
job ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

__all__ = ["on_rebalance_complete", "reseek_uncommitted"]

log = logging.getLogger(__name__)

RESUME_TIMEOUT_SECONDS = 60.0


async def reseek_uncommitted(consumer: Any, topics: Collection[str]) -> list[Any]:
    """Seek assigned partitions of ``topics`` without a positive commit to their start."""
    assigned = [tp for tp in consumer.assignment() if tp.topic in topics]
    if not assigned:
        return []
    committed = await consumer.seek_to_committed()
    uncommitted = [tp for tp in assigned if not committed.get(tp)]
    if not uncommitted:
        return []
    earliest = await consumer.earliest_offsets(*uncommitted)
    # An empty partition had nothing fetched to skip, so it is not sought: each seek
    # here races with aiokafka's fetcher (a worker of the smoke bench crashed with a
    # KeyError in Fetcher.fetched_records right after one), and an unused topic
    # (run-events without runs) never commits, so it would be sought at every rebalance.
    ends = await consumer.highwaters(*uncommitted)
    uncommitted = [tp for tp in uncommitted if ends.get(tp, 1) > earliest.get(tp, 0)]
    if not uncommitted:
        return []
    for tp in uncommitted:
        await consumer.seek(tp, earliest.get(tp, 0))
    log.info("partitions without a committed offset read from their start: %s", uncommitted)
    return uncommitted


def on_rebalance_complete(app: Any, topics: Collection[str]) -> None:
    """Run ``reseek_uncommitted`` once each rebalance's flow has resumed."""
    pending: set[asyncio.Task[None]] = set()

    async def after_resume(generation: int) -> None:
        # Faust clears the stream queues when it resumes the flow, after this signal:
        # a seek made earlier could see events fetched in between cleared again.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESUME_TIMEOUT_SECONDS
        while not app.flow_control.is_active() or app.rebalancing:
            if app.consumer_generation_id != generation or loop.time() > deadline:
                return  # another rebalance started: its own signal seeks again
            await asyncio.sleep(0.01)
        await reseek_uncommitted(app.consumer, topics)

    async def reseek(sender: Any, **kwargs: Any) -> None:
        task = asyncio.ensure_future(after_resume(app.consumer_generation_id))
        pending.add(task)
        task.add_done_callback(pending.discard)

    app.on_rebalance_complete.connect(reseek)
