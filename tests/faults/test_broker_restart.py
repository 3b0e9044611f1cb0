"""Scenario 2: the broker restarts mid-stream; the worker recovers by itself, nothing lost.

Runs against a DEDICATED broker of its own (local jars, a free port from 27092 up,
below the ephemeral port range),
started and stopped here: the shared broker of the session is never touched. It needs
Java and Maven like `make test` does without Docker; in CI a missing toolchain fails
the test instead of skipping it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.faults.report import Report
from tests.faults.support import (
    FAST_GROUP_ENV,
    FaultWorker,
    PacedProducer,
    apply,
    dedicated_broker,
    expected_jobs,
    fault_automations,
    job_figures,
    job_id_of,
    job_topics,
    records_of,
    require_broker_tools,
    start_local_broker,
    workload,
)
from tests.support import TopicReader, fault_test_settings, free_port

EVENTS = 8_000
DOWN_SECONDS = 3.0


@pytest.fixture
def own_broker() -> Iterator[tuple[int, Any]]:
    """A broker on its own port; skipped without Java/Maven outside CI, failed in CI."""
    require_broker_tools()
    with dedicated_broker() as broker:
        yield broker


def test_broker_restart_mid_stream_loses_no_job_and_needs_no_hand(
    own_broker: tuple[int, Any], uid: str, tmp_path: Path, fault_report: Report
) -> None:
    """Stop and restart the broker while events flow: the same worker process delivers all."""
    port, local = own_broker
    bootstrap = f"127.0.0.1:{port}"
    settings: Settings = fault_test_settings(bootstrap, uid, tmp_path)
    automations = fault_automations(uid)
    apply(settings, automations)
    events = workload(EVENTS, prefix=f"broker-{uid}")
    expected = expected_jobs(automations, events, tmp_path)
    wanted = {job.job_id for job in expected}

    worker = FaultWorker(
        settings, tmp_path / "worker.log", env=FAST_GROUP_ENV, web_port=free_port()
    )
    producer = PacedProducer(
        bootstrap,
        records_of(settings, events),
        batch=100,
        pause=0.1,
        request_timeout_ms=180_000,
    )
    try:
        worker.start()
        pid = worker.proc.pid if worker.proc is not None else None
        with TopicReader(bootstrap, job_topics(settings, uid), key=job_id_of) as reader:
            producer.start()
            assert reader.wait(lambda r: r.count() >= len(wanted) // 6, timeout=120), (
                f"no progress before the restart:\n{worker.log_tail()}"
            )
            seen_before, sent_before = reader.count(), producer.sent
            stopped_at = time.monotonic()
            local.stop(port, quiet=True)
            time.sleep(DOWN_SECONDS)
            alive_while_down = worker.alive
            assert start_local_broker(local, port), "restarted our own broker"
            back_at = time.monotonic()
            producer.join(300)
            complete = reader.wait(lambda r: r.has_all(wanted), timeout=240)
            reader.wait(lambda r: False, timeout=2.0)
            records = reader.records()
        figures = job_figures(expected, records)
        first_after = min((r.seen_at for r in records if r.seen_at > back_at), default=None)
        recovery = None if first_after is None else first_after - back_at
        fault_report.add(
            "2. broker restart mid-stream",
            events_sent=len(events),
            **figures.columns(),
            recovery_seconds=recovery,
            notes=(
                f"broker stopped after {sent_before} events sent / {seen_before} jobs seen, "
                f"down {back_at - stopped_at:.1f} s (stop + {DOWN_SECONDS:.0f} s + start); "
                "recovery = broker ready again to the first new job; same worker process"
            ),
        )
        assert seen_before < len(wanted), "the restart landed mid-stream"
        assert alive_while_down, "the worker survives the outage"
        assert complete, f"{len(figures.lost)} jobs lost, e.g. {figures.lost[:5]}"
        assert figures.lost == []
        assert figures.unexpected == []
        assert figures.split_pairs == []
        assert worker.alive
        assert worker.proc is not None
        assert worker.proc.pid == pid, "no restart by hand: the same process recovered"
        assert worker.http_status("/healthz") == 200
    finally:
        producer.close()
        worker.terminate_quietly()
