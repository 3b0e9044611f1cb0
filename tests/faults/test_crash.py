"""Scenario 1: SIGKILL the worker while 20,000 events flow, restart it; nothing is lost."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from app.settings import Settings
from tests.faults.report import Report
from tests.faults.support import (
    FAST_GROUP_ENV,
    SESSION_TIMEOUT,
    FaultWorker,
    PacedProducer,
    apply,
    expected_jobs,
    fault_automations,
    job_figures,
    job_id_of,
    job_topics,
    records_of,
    workload,
)
from tests.support import TopicReader

EVENTS = 20_000


def test_sigkill_mid_stream_loses_no_job_and_replays_keep_their_job_id(
    fault_settings: Settings,
    start_fault_worker: Callable[..., FaultWorker],
    uid: str,
    tmp_path: Path,
    fault_report: Report,
) -> None:
    """Every (event, matching automation) pair yields a job after a SIGKILL; copies share job_id."""
    automations = fault_automations(uid)
    apply(fault_settings, automations)
    events = workload(EVENTS, prefix=f"crash-{uid}")
    expected = expected_jobs(automations, events, tmp_path)
    wanted = {job.job_id for job in expected}
    assert {job.automation_id for job in expected} == {
        "deploy-prod",
        "notify-staging",
        "eval-links",
        "mirror-baseline-links",
        "train-dataset-0",
        "project-alias",
    }, "the workload exercises every producing automation"
    bootstrap = fault_settings.kafka_bootstrap_servers

    with TopicReader(bootstrap, job_topics(fault_settings, uid), key=job_id_of) as reader:
        first = start_fault_worker(name="before-crash", env=FAST_GROUP_ENV)
        # About 10 s of traffic: the kill lands while the producer is still sending.
        producer = PacedProducer(
            bootstrap, records_of(fault_settings, events), batch=250, pause=0.1
        ).start()
        try:
            assert reader.wait(lambda r: r.count() >= 500, timeout=120), (
                f"the worker made no progress:\n{first.log_tail()}"
            )
            # Kill while both the producer and the worker are mid-stream.
            reader.wait(
                lambda r: r.count() >= 2 * len(wanted) // 5 or producer.sent >= len(events) // 2,
                timeout=120,
            )
            sent_at_kill, seen_at_kill = producer.sent, reader.count()
            first.kill()
            killed_at = time.monotonic()
            assert not first.alive
            second = start_fault_worker(name="after-crash", env=FAST_GROUP_ENV)
            ready_at = time.monotonic()
            producer.join(180)
            complete = reader.wait(lambda r: r.has_all(wanted), timeout=240)
            reader.wait(lambda r: False, timeout=2.0)  # let late duplicates arrive
        finally:
            producer.close()
        records = reader.records()

    figures = job_figures(expected, records)
    after_restart = [r.seen_at for r in records if r.seen_at >= ready_at]
    recovery = (min(after_restart) - killed_at) if after_restart else None
    fault_report.add(
        "1. worker SIGKILL mid-stream",
        events_sent=len(events),
        **figures.columns(),
        recovery_seconds=recovery,
        notes=(
            f"killed after {sent_at_kill} events sent / {seen_at_kill} jobs seen; "
            "recovery = SIGKILL to first job of the restarted worker (process start included; "
            f"session timeout {SESSION_TIMEOUT} s)"
        ),
    )
    assert sent_at_kill < len(events), "the kill landed while events were still being sent"
    assert seen_at_kill < len(wanted), "and while the worker still had events to process"
    assert complete, f"{len(figures.lost)} jobs lost, e.g. {figures.lost[:5]}"
    assert figures.lost == []
    assert figures.unexpected == [], "no job the offline evaluation does not predict"
    assert figures.split_pairs == [], "a replayed (event, automation) pair keeps its job_id"
    assert second.http_status("/healthz") == 200
