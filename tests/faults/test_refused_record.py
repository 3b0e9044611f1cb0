"""Scenario 7: the broker refuses one job record (issue 12, point 2).

A kafka action writes to a topic whose broker-side ``max.message.bytes`` is below one
event's job (its event carries a large metadata field) and above every other job. The
broker answers MESSAGE_SIZE_TOO_LARGE, which is not retriable: the worker must stop by
itself with that event's batch unacknowledged, so its consumer group never commits past
the refused event. Once the topic's limit is raised, a restarted worker produces every
job the offline evaluation predicts: none lost, copies only with the same job_id.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app import serialization
from app.contract.automations import Automation, parse_automation
from app.core.stored import stamp
from app.kafka.admin import TopicSpec, ensure_topics
from app.settings import Settings
from tests.faults.report import Report
from tests.faults.support import (
    ENTITY,
    FAST_GROUP_ENV,
    FaultWorker,
    apply,
    event_key,
    event_topic,
    expected_jobs,
    fault_automations,
    job_figures,
    job_id_of,
    job_topics,
    partition_of,
    records_of,
    topic_config,
    workload,
)
from tests.support import TopicReader

EVENTS = 600
# The worker's producer batches at most Settings.producer_max_batch_bytes per partition
# (Faust's producer_max_batch_size), so every batch of ordinary jobs fits this limit;
# only a single larger record exceeds it.
REFUSE_LIMIT = 2 * Settings.model_fields["producer_max_batch_bytes"].get_default()
# Random hex: lz4 (the worker's compression) cannot shrink it below the limit.
BLOB_BYTES = REFUSE_LIMIT + 128 * 1024  # the event stays below max_event_bytes
RAISED_LIMIT = 8 * 1024 * 1024
EXIT_BOUND = 60.0


def _refusable(topic: str) -> Automation:
    """A kafka action on every registry alias event: its job carries the whole event."""
    spec: dict[str, Any] = {
        "id": "mirror-aliases",
        "name": "mirror every registry alias",
        "event": "ADD_ARTIFACT_ALIAS",
        "scope": {"type": "registry", "entity": ENTITY, "registry": "model"},
        "action": {
            "type": "kafka",
            "topic": topic,
            "payload": '{"model": "${artifact_version_string}", "alias": "${alias}"}',
        },
    }
    return stamp(parse_automation(spec), None)


def _produce(bootstrap: str, records: Sequence[tuple[str, bytes | None, bytes]]) -> list[Any]:
    """Produce in order and return each record's metadata (topic, partition, offset)."""

    async def run() -> list[Any]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            max_request_size=2 * 1024 * 1024,
        )
        await producer.start()
        try:
            futures = [await producer.send(t, key=k, value=v) for t, k, v in records]
            return list(await asyncio.gather(*futures))
        finally:
            await producer.stop()

    return asyncio.run(run())


def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int:
    """The group's committed offset of one partition (-1: nothing committed)."""

    async def read() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
        finally:
            await admin.close()
        meta = offsets.get(tp)
        return -1 if meta is None else int(meta.offset)

    return asyncio.run(read())


def _wait_committed(
    bootstrap: str, group: str, tp: TopicPartition, done: Callable[[int], bool], timeout: float
) -> int:
    """Poll the committed offset until `done(offset)` or timeout; returns the last one."""
    deadline = time.monotonic() + timeout
    offset = _committed(bootstrap, group, tp)
    while not done(offset) and time.monotonic() < deadline:
        time.sleep(0.5)
        offset = _committed(bootstrap, group, tp)
    return offset


def _set_limit(bootstrap: str, topic: str, limit: int) -> None:
    """Change a topic's broker-side max.message.bytes."""

    async def alter() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            resource = ConfigResource(
                ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(limit)}
            )
            # AlterConfigs (not incremental) replaces the topic's configs: this is its only one.
            (response,) = await admin.alter_configs([resource])
            errors = [r for r in response.to_object()["resources"] if r["error_code"] != 0]
            assert errors == [], errors
        finally:
            await admin.close()

    asyncio.run(alter())


def _limit_of(bootstrap: str, topic: str, want: int) -> str | None:
    """The topic's max.message.bytes, polled: a new or altered topic reaches every broker late."""
    deadline = time.monotonic() + 10
    value = topic_config(bootstrap, topic, "max.message.bytes")
    while value != str(want) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = topic_config(bootstrap, topic, "max.message.bytes")
    return value


def test_refused_job_stops_the_worker_unacked_and_a_restart_loses_nothing(
    fault_settings: Settings,
    start_fault_worker: Callable[..., FaultWorker],
    uid: str,
    tmp_path: Path,
    fault_report: Report,
) -> None:
    """A job the broker refuses stops the worker uncommitted; after the fix nothing is lost."""
    settings = fault_settings
    bootstrap = settings.kafka_bootstrap_servers
    refuse_topic = f"fault-refuse-{uid}"
    asyncio.run(
        ensure_topics(
            settings,
            [TopicSpec(refuse_topic, 2, {"max.message.bytes": str(REFUSE_LIMIT)})],
        )
    )
    assert _limit_of(bootstrap, refuse_topic, REFUSE_LIMIT) == str(REFUSE_LIMIT)

    automations = [*fault_automations(uid), _refusable(refuse_topic)]
    apply(settings, automations)
    events = workload(EVENTS, prefix=f"refuse-{uid}")
    # The first registry alias event past the middle gets the large field.
    big_index = next(
        i
        for i, e in enumerate(events)
        if i >= EVENTS // 2 and e["event_type"] == "ADD_ARTIFACT_ALIAS" and "registry" in e
    )
    big = events[big_index]
    big["artifact"]["metadata"]["blob"] = os.urandom(BLOB_BYTES // 2).hex()
    expected = expected_jobs(automations, events, tmp_path)
    wanted = {job.job_id for job in expected}
    refused_job = next(
        j for j in expected if j.event_id == big["event_id"] and j.automation_id == "mirror-aliases"
    )
    big_topic = event_topic(settings, big)
    big_tp = TopicPartition(big_topic, partition_of(event_key(big), settings.topic_partitions))
    same_partition = [
        i
        for i, e in enumerate(events)
        if event_topic(settings, e) == big_topic
        and partition_of(event_key(e), settings.topic_partitions) == big_tp.partition
    ]
    assert min(same_partition) < big_index < max(same_partition), (
        "ordinary events precede and follow the refused one on its partition"
    )
    assert any(event_key(events[i]) == event_key(big) for i in same_partition if i > big_index), (
        "and on its collection key"
    )
    # The job carries the whole event, so it is larger than the event; it still fits the
    # worker's own producer (max_request_size), so the broker refuses it, not the client.
    event_bytes = len(serialization.dumps(big))
    assert REFUSE_LIMIT < BLOB_BYTES <= event_bytes
    assert event_bytes + 64 * 1024 < settings.max_record_bytes

    first_ids = {e["event_id"] for e in events[:big_index]}
    first_wanted = {j.job_id for j in expected if j.event_id in first_ids}
    group = settings.app_id
    with TopicReader(
        bootstrap, [*job_topics(settings, uid), refuse_topic], key=job_id_of
    ) as reader:
        first = start_fault_worker(name="refused", env=FAST_GROUP_ENV)
        # Phase 1: everything before the large event, processed and committed.
        _produce(bootstrap, records_of(settings, events[:big_index]))
        assert reader.wait(lambda r: r.has_all(first_wanted), timeout=30), (
            f"{len(reader.missing(first_wanted))} jobs of phase 1 missing:\n{first.log_tail()}"
        )
        before = sum(1 for i in same_partition if i < big_index)
        committed_before = _wait_committed(
            bootstrap, group, big_tp, lambda offset: offset >= before, timeout=15
        )
        assert committed_before == before, "phase 1 is committed before the refusal"

        # Phase 2: the large event and everything after it.
        metas = _produce(bootstrap, records_of(settings, events[big_index:]))
        sent_at = time.monotonic()
        big_meta = metas[0]
        assert (big_meta.topic, big_meta.partition) == (big_tp.topic, big_tp.partition)
        refused_offset = int(big_meta.offset)
        assert first.proc is not None
        exit_code: int | None = None
        while time.monotonic() - sent_at < EXIT_BOUND:
            exit_code = first.proc.poll()
            if exit_code is not None:
                break
            time.sleep(0.2)
        exit_seconds = time.monotonic() - sent_at
        log_text = first.log_path.read_text(errors="replace")
        assert exit_code is not None, (
            f"the worker is still running {EXIT_BOUND:.0f} s after the refusal:\n"
            f"{first.log_tail(80)}"
        )
        committed_after = _committed(bootstrap, group, big_tp)
        seen_refused = reader.has_all({refused_job.job_id})

        _set_limit(bootstrap, refuse_topic, RAISED_LIMIT)
        assert _limit_of(bootstrap, refuse_topic, RAISED_LIMIT) == str(RAISED_LIMIT)
        restarted_at = time.monotonic()
        second = start_fault_worker(name="after-fix", env=FAST_GROUP_ENV)
        complete = reader.wait(lambda r: r.has_all(wanted), timeout=45)
        recovery = time.monotonic() - restarted_at
        reader.wait(lambda r: False, timeout=1.0)  # let late duplicates arrive
        records = reader.records()
        committed_final = _wait_committed(
            bootstrap, group, big_tp, lambda offset: offset > refused_offset, timeout=15
        )

    figures = job_figures(expected, records)
    fault_report.add(
        "7. broker refuses one job record",
        events_sent=len(events),
        **figures.columns(),
        recovery_seconds=recovery,
        notes=(
            f"{refuse_topic} max.message.bytes {REFUSE_LIMIT}, refused job > {event_bytes} bytes; "
            f"worker exit code {exit_code} after {exit_seconds:.1f} s; committed offset on "
            f"{big_tp.topic}[{big_tp.partition}] {committed_after} vs refused offset "
            f"{refused_offset} (before: {committed_before}, after the fix: {committed_final}); "
            "recovery = restart (process start included) to the last expected job"
        ),
    )
    assert "MessageSizeTooLarge" in log_text, "the worker logged the broker's refusal"
    assert exit_code != 0, "a refusal stops the worker as a failure"
    assert not seen_refused, "the broker stored nothing of the refused job"
    assert 0 <= committed_after <= refused_offset, "never committed past the refused event"
    assert complete, f"{len(figures.lost)} jobs lost, e.g. {figures.lost[:5]}"
    assert figures.lost == []
    assert figures.unexpected == [], "no job the offline evaluation does not predict"
    assert figures.split_pairs == [], "a replayed (event, automation) pair keeps its job_id"
    assert committed_final > refused_offset, "the restarted worker commits past it"
    assert second.http_status("/healthz") == 200
