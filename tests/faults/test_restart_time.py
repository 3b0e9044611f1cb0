"""Scenario: a restarted worker resumes in the same time after 1,000 and after 100,000 jobs.

Every job appends an execution to the `history` table, whose changelog grows with every
chunk the history agent folds. With the memory store a restart re-reads that changelog
from offset 0 before Faust starts any agent, so resuming took longer the longer the
worker had run; with the RocksDB store (the default) the table is on disk with the
changelog offset it holds, and a restart reads only the tail.

Resume time = from spawning the stopped worker's process to the first job of an event
produced just after the spawn (a clean stop: a SIGKILL adds the group's session timeout,
the same after any history). Each phase restarts five times and compares the mean of
the three fastest restarts of each: load on a 2-core machine (the broker's log cleaner,
the test's own reader) only ever adds time, so the slow restarts are left out, and a
slow spell on a busy machine does not decide the verdict. A single fastest restart is
not enough: restarts of one phase spread over about a second (3.75 to 5.14 s in a
clean-clone run whose medians were 4.58 and 4.72 s), so one lucky restart could decide
it. The medians are reported too.
HOOKSTREAM_STORE=memory:// runs the same scenario on the memory store (it fails the
20% bound: that is the growth this test exists to keep away).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from app import serialization
from app.contract.automations import Automation, parse_automation
from app.core.stored import stamp
from app.settings import Settings
from tests.faults.report import Report
from tests.faults.support import (
    ENTITY,
    FaultWorker,
    PacedProducer,
    apply,
    event_topic,
    records_of,
    topic_config,
    workload,
)
from tests.support import TopicReader

# Kafka-action automations that match every alias event: each event gives this many
# jobs and as many action-results records (and history executions).
AUTOMATIONS = 20
SMALL_JOBS = 1_000
LARGE_JOBS = 100_000
RESTARTS = 5
FASTEST = 3
TOLERANCE = 0.20


def _automations(uid: str) -> list[Automation]:
    """Cheap automations: a kafka action to the fault mirror topic, no filter."""
    return [
        stamp(
            parse_automation(
                {
                    "id": f"restart-{i:02d}",
                    "name": f"restart probe {i}",
                    "event": "ADD_ARTIFACT_ALIAS",
                    "scope": {"type": "registry", "entity": ENTITY, "registry": "model"},
                    "action": {
                        "type": "kafka",
                        "topic": f"fault-mirror-{uid}",
                        "payload": '{"v": "${artifact_version}"}',
                    },
                }
            ),
            None,
        )
        for i in range(AUTOMATIONS)
    ]


def _alias_events(count: int, prefix: str) -> list[dict[str, Any]]:
    """`count` registry ADD_ARTIFACT_ALIAS events (versions rising per collection)."""
    events = [
        e
        for e in workload(count * 4, prefix=prefix)
        if e["event_type"] == "ADD_ARTIFACT_ALIAS" and "registry" in e
    ]
    assert len(events) >= count, "the workload yields enough alias events"
    return events[:count]


def _fastest_mean(times: list[float]) -> float:
    """The mean of the FASTEST shortest restart times."""
    return statistics.fmean(sorted(times)[:FASTEST])


def _event_id(value: bytes | None) -> str | None:
    """The event id a job record was made from."""
    if value is None:
        return None
    event_id: str | None = serialization.loads(value)["event"]["event_id"]
    return event_id


def _produce(settings: Settings, events: list[dict[str, Any]]) -> None:
    """Produce events and wait until Kafka acknowledged them all."""
    producer = PacedProducer(
        settings.kafka_bootstrap_servers, records_of(settings, events), batch=500, pause=0.0
    ).start()
    producer.join(120)


def _jobs_after(reader: TopicReader, topic: str, seen: int, event_id: str) -> float | None:
    """When the reader saw the first job of `event_id` among the records after `seen`."""
    for record in reader.records(topic, since=seen):
        if _event_id(record.value) == event_id:
            return record.seen_at
    return None


def _history_matched(worker: FaultWorker, automation_id: str) -> int:
    """The worker's `matched` counter of one automation (its history table)."""
    body = serialization.loads(worker.get(f"/automations/{automation_id}/history"))
    return int(body["counters"]["matched"])


def _wait_folded(worker: FaultWorker, ids: list[str], matched: int, timeout: float) -> None:
    """Wait until every automation's history counts `matched` executions."""
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = {i: _history_matched(worker, i) for i in ids}
        if all(c >= matched for c in counts.values()):
            return
        time.sleep(0.5)
    raise AssertionError(f"history not folded in {timeout}s: want {matched}, have {counts}")


def _resume_seconds(
    worker: FaultWorker,
    settings: Settings,
    reader: TopicReader,
    topic: str,
    probe: dict[str, Any],
) -> float:
    """Stop the worker, spawn it again, produce `probe`: seconds to its first job."""
    worker.stop()
    seen = reader.count(topic)
    started = time.monotonic()
    worker.spawn()
    _produce(settings, [probe])
    deadline = started + 120
    while time.monotonic() < deadline:
        at = _jobs_after(reader, topic, seen, probe["event_id"])
        if at is not None:
            worker.wait_ready(30)
            return at - started
        assert worker.alive, f"worker exited:\n{worker.log_tail()}"
        time.sleep(0.05)
    raise AssertionError(f"no job of the probe in 120 s:\n{worker.log_tail()}")


def test_restart_time_does_not_grow_with_history(
    fault_settings: Settings,
    start_fault_worker: Callable[..., FaultWorker],
    uid: str,
    fault_report: Report,
) -> None:
    """Resume time after 100,000 jobs is within 20% of the time after 1,000 (fastest 3 of 5)."""
    settings = fault_settings
    automations = _automations(uid)
    ids = [a.id for a in automations]
    apply(settings, automations)
    small_events = SMALL_JOBS // AUTOMATIONS
    large_events = LARGE_JOBS // AUTOMATIONS
    events = _alias_events(large_events + 2 * RESTARTS, f"restart-{uid}")
    assert all(event_topic(settings, e) == settings.registry_events_topic for e in events)
    bulk, probes = events[:large_events], events[large_events:]
    topic = f"fault-mirror-{uid}"
    figures: dict[str, Any] = {"store": settings.store}

    with TopicReader(settings.kafka_bootstrap_servers, [topic]) as reader:
        worker = start_fault_worker(name="restart")
        # The compacted topics carry the configs under which the cleaner runs (ours,
        # not the bare cleanup.policy Faust gives a changelog it declares itself).
        for compacted in (settings.history_changelog_topic, settings.alias_pointers_topic):
            bootstrap = settings.kafka_bootstrap_servers
            assert topic_config(bootstrap, compacted, "segment.ms") == str(
                settings.changelog_segment_ms
            ), compacted
            assert topic_config(bootstrap, compacted, "min.compaction.lag.ms") == "0"
        resumes: dict[int, list[float]] = {}
        produced = 0
        for phase, (jobs, upto) in enumerate(
            ((SMALL_JOBS, small_events), (LARGE_JOBS, large_events))
        ):
            started = time.monotonic()
            _produce(settings, bulk[produced:upto])
            produced = upto
            wanted = produced * AUTOMATIONS

            def all_jobs(r: TopicReader, n: int = wanted) -> bool:
                return r.count(topic) >= n

            assert reader.wait(all_jobs, 240), f"{reader.count(topic)} of {wanted} jobs"
            _wait_folded(worker, ids, produced, 120)
            figures[f"process_{jobs}_seconds"] = round(time.monotonic() - started, 2)
            times = []
            for probe in probes[phase * RESTARTS : (phase + 1) * RESTARTS]:
                times.append(_resume_seconds(worker, settings, reader, topic, probe))
                produced_probes = len(times) + phase * RESTARTS
                # Probes are alias events too: each adds one execution per automation.
                _wait_folded(worker, ids, produced + produced_probes, 120)
            resumes[jobs] = times
        # Everything the worker folded before its restarts is still in its history.
        final = {i: _history_matched(worker, i) for i in ids}

    small, large = _fastest_mean(resumes[SMALL_JOBS]), _fastest_mean(resumes[LARGE_JOBS])
    medians = {jobs: statistics.median(times) for jobs, times in resumes.items()}
    print(
        f"\nrestart time, store {settings.store}: "
        f"after {SMALL_JOBS:,} jobs fastest three {small:.2f} s median "
        f"{medians[SMALL_JOBS]:.2f} s {resumes[SMALL_JOBS]}, after {LARGE_JOBS:,} jobs "
        f"fastest three {large:.2f} s "
        f"median {medians[LARGE_JOBS]:.2f} s {resumes[LARGE_JOBS]}; processing {figures}"
    )
    for jobs, fastest in ((SMALL_JOBS, small), (LARGE_JOBS, large)):
        fault_report.add(
            f"restart time after {jobs:,} jobs ({settings.store})",
            jobs_expected=jobs,
            recovery_seconds=fastest,
            notes=(
                f"store {settings.store}; spawn -> first job of a new event, mean of the "
                f"fastest {FASTEST} of {RESTARTS} clean restarts "
                f"{[round(t, 2) for t in resumes[jobs]]} "
                f"(median {medians[jobs]:.2f} s)"
            ),
        )
    assert set(final.values()) == {large_events + 2 * RESTARTS}, final
    assert abs(large - small) <= TOLERANCE * small, (
        f"resume {large:.2f} s after {LARGE_JOBS:,} jobs vs {small:.2f} s after "
        f"{SMALL_JOBS:,} (store {settings.store})"
    )
