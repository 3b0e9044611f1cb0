"""A dispatcher SIGKILLed mid-retry and restarted loses no job and re-POSTs none after success."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.integration.dispatch_support import (
    DispatcherProcess,
    Receiver,
    make_job,
    produce_jobs,
)
from tests.support import TopicReader, dispatch_test_settings, read_back


def _two_xx(hits: list[Any]) -> list[Any]:
    """The hits answered with a 2xx status."""
    return [h for h in hits if h.status is not None and 200 <= h.status < 300]


async def test_sigkill_mid_retry_then_restart(
    kafka_bootstrap: str, uid: str, tmp_path: Path
) -> None:
    """Kill -9 while jobs retry and a slow one holds the commit back; restart; count POSTs."""
    failing = True
    release_slow = asyncio.Event()

    async def retry(request: web.Request, count: int) -> web.StreamResponse:
        return web.Response(status=503) if failing else web.Response(text="ok")

    async def slow(request: web.Request, count: int) -> web.StreamResponse:
        if count == 1:
            await release_slow.wait()  # in flight when the dispatcher dies
            return web.Response(status=503)
        return web.Response(text="ok")

    receiver = await Receiver(handlers={"/retry": retry, "/slow": slow}).start()
    settings = dispatch_test_settings(
        kafka_bootstrap,
        uid,
        tmp_path,
        timeout_seconds=30.0,
        backoff_max_seconds=0.5,
        max_attempts=100,
    )
    # Same key: the slow job's offset is below the fast ones, so their commit is held back.
    slow_job = make_job(receiver.url("/slow"), automation_id="key-a")
    fast = [make_job(receiver.url("/fast"), automation_id="key-a") for _ in range(4)]
    retrying = [make_job(receiver.url("/retry"), automation_id="key-b") for _ in range(3)]
    jobs = [slow_job, *fast, *retrying]
    first = DispatcherProcess(settings, "webhook", tmp_path / "first.log")
    second = DispatcherProcess(settings, "webhook", tmp_path / "second.log")
    results: TopicReader | None = None
    try:
        await first.start()
        await produce_jobs(settings, settings.webhook_topic, [slow_job, *fast])
        await produce_jobs(settings, settings.webhook_topic, retrying)
        await receiver.wait_for(
            lambda: (
                len(receiver.on("/slow")) == 1
                and all(_two_xx(receiver.for_id(j["job_id"])) for j in fast)
                and all(len(receiver.for_id(j["job_id"])) >= 2 for j in retrying)
            )
        )
        await first.kill()
        before = {j["job_id"]: len(receiver.for_id(j["job_id"])) for j in jobs}
        failing = False
        release_slow.set()

        await second.start()
        results = await read_back(settings, settings.action_results_topic)
        finished = {j["job_id"] for j in jobs}
        await results.until(
            lambda v: finished <= {r["job_id"] for r in v if r["status"] == "FINISHED"}, 40
        )
        await asyncio.sleep(1.5)  # longer than the largest retry tier: late duplicates show
        skipped = await second.metric("hookstream_duplicate_jobs_skipped_total")
        after = {j["job_id"]: len(receiver.for_id(j["job_id"])) for j in jobs}
        exit_code = await second.stop()
    except BaseException:
        print(first.log(), second.log(), sep="\n----\n")
        raise
    finally:
        await first.kill()
        await second.stop()
        if results is not None:
            await results.aclose()
        await receiver.close()

    posts_after_success = {
        j["job_id"]: sum(
            1
            for h in receiver.for_id(j["job_id"])
            if h.at > _two_xx(receiver.for_id(j["job_id"]))[0].at
        )
        for j in jobs
    }
    print(
        f"\nPOSTs per job at kill: {list(before.values())}; at end: {list(after.values())}; "
        f"duplicates skipped after restart: {skipped:g}"
    )
    assert all(len(_two_xx(receiver.for_id(j["job_id"]))) == 1 for j in jobs)  # none lost
    assert posts_after_success == {j["job_id"]: 0 for j in jobs}
    assert [after[j["job_id"]] for j in fast] == [1, 1, 1, 1]
    assert after[slow_job["job_id"]] == 2
    assert skipped >= len(fast)  # the fast jobs were redelivered and deduplicated
    assert all(before[j["job_id"]] >= 2 for j in retrying)
    assert exit_code == 0  # SIGTERM: drained, committed, left the group
