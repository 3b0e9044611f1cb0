"""Scenario 1, dispatcher half: worker -> actions.webhook -> dispatcher -> a real receiver.

Both the worker and the webhook dispatcher are SIGKILLed mid-run and restarted. Every
expected (event, automation) job must get a 2xx at the receiver; no webhook-id may be
POSTed after its first 2xx, except in the window docs/delivery.md documents (a crash
between the 2xx and the dedup write), which is counted and bounded.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from app.contract.automations import Automation, parse_automation
from app.core.stored import stamp
from app.kafka.admin import ensure_topics
from app.kafka.automations import apply_automations
from app.settings import Settings
from tests.faults.report import Report
from tests.faults.support import (
    ENTITY,
    FAST_GROUP_ENV,
    FaultWorker,
    PacedProducer,
    expected_jobs,
    first_2xx,
    hits_by_id,
    is_2xx,
    job_figures,
    job_id_of,
    posts_after_success,
    records_of,
    succeeded,
    workload,
)
from tests.integration.dispatch_support import DispatcherProcess, Receiver
from tests.support import TopicReader, free_port, isolated_settings, until

EVENTS = 3_000
PARTITIONS = 4
IN_FLIGHT = 16
DISPATCH: dict[str, Any] = {
    "allow_http": True,
    "allowed_networks": ["127.0.0.1/32"],
    "timeout_seconds": 5.0,
    "backoff_base_seconds": 0.05,
    "backoff_max_seconds": 1.0,
    "retry_tiers_seconds": [0.2, 1.0],
    "max_attempts": 20,
    "commit_interval_seconds": 0.2,
    "drain_seconds": 2.0,
    "session_timeout_seconds": 6.0,
    "max_in_flight_per_partition": IN_FLIGHT,
}


def _automations(receiver: Receiver) -> list[Automation]:
    """Two webhook automations: one endpoint answers 200, one 503 then 200 per job."""
    registry = {"type": "registry", "entity": ENTITY, "registry": "model"}
    specs: list[dict[str, Any]] = [
        {
            "id": "hook-ok",
            "name": "deploy on every alias",
            "event": "ADD_ARTIFACT_ALIAS",
            "scope": registry,
            "action": {
                "type": "webhook",
                "url": receiver.url("/ok"),
                "payload": '{"model": "${artifact_version_string}", "alias": "${alias}"}',
            },
        },
        {
            "id": "hook-flaky",
            "name": "evaluate every link",
            "event": "LINK_ARTIFACT",
            "scope": registry,
            "action": {
                "type": "webhook",
                "url": receiver.url("/flaky"),
                "payload": '{"model": "${artifact_version_string}"}',
            },
        },
    ]
    return [stamp(parse_automation(spec), None) for spec in specs]


async def test_worker_and_dispatcher_sigkill_lose_no_post_and_repeat_none_after_success(
    kafka_bootstrap: str, uid: str, tmp_path: Path, fault_report: Report
) -> None:
    """SIGKILL worker and dispatcher mid-run: every job gets a 2xx, none a POST after it."""

    async def flaky(request: web.Request, count: int) -> web.StreamResponse:
        return web.Response(status=503) if count == 1 else web.Response(text="ok")

    receiver = await Receiver(handlers={"/flaky": flaky}).start()
    settings: Settings = isolated_settings(
        kafka_bootstrap, uid, tmp_path, topic_partitions=PARTITIONS, dispatch=DISPATCH
    )
    await ensure_topics(settings, [])
    automations = _automations(receiver)
    await apply_automations(settings, automations)
    events = workload(EVENTS, prefix=f"pipe-{uid}")
    expected = expected_jobs(automations, events, tmp_path)
    wanted = {job.job_id for job in expected}
    assert {job.automation_id for job in expected} == {"hook-ok", "hook-flaky"}

    workers = [
        FaultWorker(
            settings, tmp_path / f"worker-{i}.log", env=FAST_GROUP_ENV, web_port=free_port()
        )
        for i in range(2)
    ]
    dispatchers = [
        DispatcherProcess(settings, "webhook", tmp_path / f"dispatcher-{i}.log") for i in range(2)
    ]
    bootstrap = settings.kafka_bootstrap_servers
    producer = PacedProducer(bootstrap, records_of(settings, events), batch=100, pause=0.1)
    reader = TopicReader(bootstrap, [settings.webhook_topic], key=job_id_of)
    started = time.monotonic()
    try:
        await dispatchers[0].start()
        await asyncio.to_thread(workers[0].start)
        await asyncio.to_thread(reader.__enter__)
        producer.start()

        # Worker SIGKILL: events still flowing, jobs partly written.
        assert await until(lambda: reader.count() >= len(wanted) // 4, 90), workers[0].log_tail()
        sent_at_worker_kill, jobs_at_worker_kill = producer.sent, reader.count()
        workers[0].terminate_quietly()
        worker_killed_at = time.monotonic()
        await asyncio.to_thread(workers[1].start)

        # Dispatcher SIGKILL: part of the jobs delivered, requests in flight.
        assert await until(lambda: len(succeeded(receiver) & wanted) >= len(wanted) // 2, 90)
        delivered_at_dispatcher_kill = len(succeeded(receiver) & wanted)
        await dispatchers[0].kill()
        dispatcher_killed_at = time.monotonic()
        await dispatchers[1].start()

        await asyncio.to_thread(producer.join, 60)
        complete = await until(lambda: wanted <= succeeded(receiver), 90)
        await asyncio.sleep(2.0)  # longer than the largest retry tier: late repeats show
        skipped = await dispatchers[1].metric("hookstream_duplicate_jobs_skipped_total")
        records = reader.records()
    except BaseException:
        print(*(w.log_tail() for w in workers), *(d.log() for d in dispatchers), sep="\n----\n")
        raise
    finally:
        producer.close()
        reader.close()
        for worker in workers:
            worker.terminate_quietly()
        for process in dispatchers:
            await process.kill()
        await receiver.close()

    figures = job_figures(expected, records)
    by_id = hits_by_id(receiver)
    repeated = {job_id: n for job_id, hits in by_id.items() if (n := posts_after_success(hits))}
    # The documented window: 2xx before the dispatcher died, repeated by its successor.
    outside_window = {
        job_id
        for job_id in repeated
        if not any(is_2xx(h) and h.at <= dispatcher_killed_at for h in by_id[job_id])
        or any(
            h.at <= dispatcher_killed_at and h.at > first_2xx(by_id[job_id]) for h in by_id[job_id]
        )
    }
    lost = sorted(wanted - succeeded(receiver))
    post_2xx_times = [h.at for h in receiver.hits if is_2xx(h) and h.at > dispatcher_killed_at]
    recovery = (min(post_2xx_times) - dispatcher_killed_at) if post_2xx_times else None
    bound = 1 * IN_FLIGHT * PARTITIONS  # dispatcher kills x in-flight limit of one process
    fault_report.add(
        "1b. worker + dispatcher SIGKILL, real receiver",
        events_sent=len(events),
        jobs_expected=len(wanted),
        jobs_seen=figures.seen,
        lost=len(lost),
        duplicates=figures.duplicates,
        lost_by_worker=len(figures.lost),
        recovery_seconds=recovery,
        notes=(
            f"lost: {len(figures.lost)} never written by the worker, "
            f"{len(set(lost) - set(figures.lost))} written but never 2xx; "
            f"2 webhook automations (/ok 200, /flaky 503 then 200); worker killed after "
            f"{sent_at_worker_kill} events sent / {jobs_at_worker_kill} jobs written, dispatcher "
            f"killed after {delivered_at_dispatcher_kill} jobs delivered; "
            f"{len(receiver.hits)} POSTs, double POSTs after a 2xx: "
            f"{sum(repeated.values())} on {len(repeated)} webhook-ids (bound {bound}), "
            f"{len(repeated) - len(outside_window)} of them answered 2xx before the dispatcher "
            "SIGKILL and re-POSTed by its successor (the documented window between the 2xx "
            "and the dedup write); "
            f"{skipped:g} redelivered jobs skipped by dedup after the restart; "
            "recovery = dispatcher SIGKILL to the next 2xx (process start included); "
            f"run {time.monotonic() - started:.0f} s"
        ),
    )
    print(
        f"\nworker killed at {worker_killed_at - started:.1f}s, dispatcher at "
        f"{dispatcher_killed_at - started:.1f}s; repeats after success: {repeated}"
    )
    assert sent_at_worker_kill < len(events), "the worker kill landed mid-stream"
    assert delivered_at_dispatcher_kill < len(wanted), "the dispatcher kill landed mid-run"
    # Attribute a loss: never written to actions.webhook (worker) or never a 2xx (dispatcher).
    assert figures.lost == [], f"worker: {len(figures.lost)} jobs never written: {figures.lost[:5]}"
    assert complete, f"dispatcher: {len(lost)} jobs never got a 2xx, e.g. {lost[:5]}"
    assert lost == []
    assert figures.unexpected == []
    assert figures.split_pairs == [], "copies of one (event, automation) pair share a job_id"
    assert set(by_id) <= wanted, "no POST for a job the offline run does not predict"
    assert all(len(by_id[j]) >= 2 for j in wanted if by_id[j][0].path == "/flaky")
    assert sum(repeated.values()) <= bound, f"POSTs after a 2xx beyond the crash window: {repeated}"
    assert outside_window == set(), "every POST after a 2xx is the crash window's"
