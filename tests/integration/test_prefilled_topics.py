"""A fresh worker over topics that already hold events processes every one of them.

Faust skips the events it fetched during recovery and relies on a seek back to the
committed offset; aiokafka does not seek a partition whose committed offset is none
or 0, so without app.stream.offsets a new group lost them (about half the runs here).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from app import serialization
from app.kafka.clients import read_to_end
from tests.faults.support import (
    apply,
    event_topic,
    expected_jobs,
    fault_automations,
    job_topics,
    workload,
)
from tests.integration.harness import WorkerProcess, produce_events
from tests.support import fault_test_settings

EVENTS = 2_000
ROUNDS = 2
TIMEOUT = 90.0


def _job_ids(bootstrap: str, topics: list[str]) -> set[str]:
    ids: set[str] = set()
    for topic in topics:
        for record in asyncio.run(read_to_end(bootstrap, topic)):
            if record.value is not None:
                ids.add(serialization.loads(record.value)["job_id"])
    return ids


def test_a_new_group_processes_every_prefilled_event(
    kafka_bootstrap: str, uid: str, tmp_path: Path
) -> None:
    """Twice, a worker of a new group starts after its events: every predicted job arrives."""
    for round_ in range(ROUNDS):
        run = f"{uid}r{round_}"
        folder = tmp_path / run
        folder.mkdir()
        settings = fault_test_settings(kafka_bootstrap, run, folder)
        automations = fault_automations(run)
        apply(settings, automations)
        events = workload(EVENTS, prefix=run)
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            by_topic.setdefault(event_topic(settings, event), []).append(event)
        for topic, values in by_topic.items():
            produce_events(settings, topic, values)
        expected = {job.job_id for job in expected_jobs(automations, events, folder)}
        assert len(expected) > EVENTS // 2, "the workload must produce jobs"
        worker = WorkerProcess(settings, folder / "worker.log").start()
        try:
            deadline = time.monotonic() + TIMEOUT
            got = _job_ids(kafka_bootstrap, job_topics(settings, run))
            while not expected <= got and time.monotonic() < deadline:
                time.sleep(1.0)
                got = _job_ids(kafka_bootstrap, job_topics(settings, run))
        finally:
            worker.stop()
        missing = expected - got
        assert not missing, f"round {round_}: {len(missing)} of {len(expected)} jobs never came"
