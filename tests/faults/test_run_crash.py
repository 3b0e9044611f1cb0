"""SIGKILL a worker in the middle of a run stream, restart it: no firing is lost.

The run-state table's changelog may be ahead of the committed offsets when the worker
dies (a batch's changelog records acknowledged, its offsets not yet committed): the
records read again are replays, which repeat the firings they made with the same job
ids and fold nothing twice. The jobs read back are compared with the offline run
pipeline over the same records: none lost, none unexpected, and every copy of an
(event, automation) pair has one job id.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.settings import Settings
from tests.factories import expected_run_job_ids, run_stream, run_stream_automations
from tests.faults.report import Report
from tests.faults.support import (
    FAST_GROUP_ENV,
    FaultWorker,
    PacedProducer,
    apply,
    job_id_of,
)
from tests.support import TopicReader

RUNS = 200
STEPS = 60


def test_sigkill_mid_run_stream_loses_no_firing_and_repeats_keep_their_job_id(
    fault_settings: Settings,
    start_fault_worker: Callable[..., FaultWorker],
    uid: str,
    fault_report: Report,
) -> None:
    """Every firing the offline pipeline computes arrives after a SIGKILL; copies share job_id."""
    entity = f"crash-{uid}"
    automations = run_stream_automations(entity)
    apply(fault_settings, automations)
    records = run_stream(entity, runs=RUNS, steps=STEPS)
    wanted = expected_run_job_ids(automations, records)
    assert len(wanted) > 1000, "the stream fires often enough to be killed between firings"
    topic = fault_settings.run_events_topic
    bootstrap = fault_settings.kafka_bootstrap_servers
    with TopicReader(bootstrap, [fault_settings.webhook_topic], key=job_id_of) as reader:
        first = start_fault_worker(name="runs-before-crash", env=FAST_GROUP_ENV)
        producer = PacedProducer(
            bootstrap, [(topic, key, value) for key, value in records], batch=200, pause=0.05
        ).start()
        try:
            assert reader.wait(lambda r: r.count() >= len(wanted) // 4, timeout=120), (
                f"the worker made no progress:\n{first.log_tail()}"
            )
            sent_at_kill, seen_at_kill = producer.sent, reader.count()
            first.kill()
            killed_at = time.monotonic()
            assert not first.alive
            second = start_fault_worker(name="runs-after-crash", env=FAST_GROUP_ENV)
            producer.join(180)
            complete = reader.wait(lambda r: r.has_all(wanted), timeout=240)
            reader.wait(lambda r: False, timeout=2.0)  # let late repeats arrive
        finally:
            producer.close()
        jobs = [record.json() for record in reader.records()]
    ids = [job["job_id"] for job in jobs]
    lost = wanted - set(ids)
    unexpected = set(ids) - wanted
    pairs: dict[tuple[str, str], set[str]] = {}
    for job in jobs:
        pairs.setdefault((job["event_id"], job["automation_id"]), set()).add(job["job_id"])
    fault_report.add(
        "run stream: worker SIGKILL mid-stream",
        events_sent=len(records),
        jobs_expected=len(wanted),
        jobs_seen=len(ids),
        lost=len(lost),
        duplicates=len(ids) - len(set(ids)),
        recovery_seconds=time.monotonic() - killed_at,
        notes=f"killed after {sent_at_kill} records sent / {seen_at_kill} jobs seen",
    )
    assert seen_at_kill < len(wanted), "the kill landed while firings were still to come"
    assert complete, f"{len(lost)} firings lost, e.g. {sorted(lost)[:5]}\n{second.log_tail()}"
    assert lost == set()
    assert unexpected == set(), "no firing the offline pipeline does not compute"
    assert all(len(found) == 1 for found in pairs.values()), "a repeat keeps its job_id"
    assert second.http_status("/healthz") == 200
