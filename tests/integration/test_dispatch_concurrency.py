"""A slow endpoint must not stall other jobs of its partition (real broker, real server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.integration.dispatch_support import (
    Receiver,
    dispatcher,
    make_job,
    produce_jobs,
)
from tests.support import dispatch_test_settings, read_back

SLOW_SECONDS = 3.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A server whose /slow path answers after SLOW_SECONDS and /fast at once."""

    async def slow(request: web.Request, count: int) -> web.StreamResponse:
        await asyncio.sleep(SLOW_SECONDS)
        return web.Response(text="slow ok")

    rec = await Receiver(handlers={"/slow": slow}).start()
    try:
        yield rec
    finally:
        await rec.close()


async def test_fast_job_behind_slow_ones_is_not_blocked(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """Three 3 s jobs then a fast one on the same partition: the fast one is done in < 1 s."""
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path, timeout_seconds=10.0)
    slow = [make_job(receiver.url("/slow"), automation_id="same-key") for _ in range(3)]
    fast = make_job(receiver.url("/fast"), automation_id="same-key")
    async with dispatcher(settings):
        results = await read_back(settings, settings.action_results_topic)
        try:
            await produce_jobs(settings, settings.webhook_topic, slow)
            await receiver.wait_for(lambda: len(receiver.on("/slow")) == 3)
            started = time.monotonic()
            await produce_jobs(settings, settings.webhook_topic, [fast])
            await results.until(
                lambda v: any(r["job_id"] == fast["job_id"] and r["final"] for r in v)
            )
            fast_done = time.monotonic() - started
            slow_answered = [h.status for h in receiver.on("/slow")]
            await receiver.wait_for(lambda: all(h.status for h in receiver.on("/slow")), 10)
        finally:
            await results.aclose()
    print(f"\nfast job behind 3 slow ones on one partition: finished in {fast_done * 1000:.0f} ms")
    assert fast_done < 1.0
    assert slow_answered == [None, None, None]  # the slow ones were still in flight
    assert len(receiver.on("/fast")) == 1


async def test_in_flight_limit_bounds_a_partition(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """With max_in_flight_per_partition=1 the same fast job waits for the slow one."""
    settings = dispatch_test_settings(
        kafka_bootstrap, uid, tmp_path, timeout_seconds=10.0, max_in_flight_per_partition=1
    )
    slow = make_job(receiver.url("/slow"), automation_id="same-key")
    fast = make_job(receiver.url("/fast"), automation_id="same-key")
    async with dispatcher(settings):
        started = time.monotonic()
        await produce_jobs(settings, settings.webhook_topic, [slow, fast])
        await receiver.wait_for(lambda: len(receiver.on("/fast")) == 1, 15)
        waited = time.monotonic() - started
    assert waited >= SLOW_SECONDS - 0.1
    assert receiver.on("/slow")[0].status == 200


async def test_two_dispatchers_share_partitions(
    kafka_bootstrap: str, uid: str, tmp_path: Path, receiver: Receiver
) -> None:
    """Two instances in one group split the partitions; every job is POSTed exactly once."""
    settings = dispatch_test_settings(kafka_bootstrap, uid, tmp_path)
    other = settings.model_copy(update={"web_port": 0})
    jobs = [make_job(receiver.url("/fast"), automation_id=f"auto-{i % 8}") for i in range(24)]
    async with dispatcher(settings) as first:
        await produce_jobs(settings, settings.webhook_topic, jobs[:12])
        async with dispatcher(other) as second:
            await produce_jobs(settings, settings.webhook_topic, jobs[12:])
            await receiver.wait_for(lambda: len(receiver.on("/fast")) >= len(jobs), 30)
            held = (first.assigned, second.assigned)
            await asyncio.sleep(0.5)
    ids = [h.webhook_id for h in receiver.on("/fast")]
    assert sorted(ids) == sorted(j["job_id"] for j in jobs)
    assert held[0]
    assert held[1]
    assert not set(held[0]) & set(held[1])
