"""Run events end to end on the real broker: run-events in, jobs and dead letters out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from app.contract.dead_letters import DeadLetter
from app.kafka.automations import apply_automations
from app.kafka.clients import produce
from app.settings import Settings
from tests.factories import (
    expected_run_job_ids,
    run_metric_bytes,
    run_stream,
    run_stream_automations,
)
from tests.integration.harness import WorkerProcess, consume


def test_run_stream_yields_every_expected_job_and_dead_letters(
    hs_settings: Settings, start_worker: Callable[..., WorkerProcess], uid: str
) -> None:
    """Every run event type fires through a worker exactly as the offline pipeline says."""
    entity = f"acme-{uid}"
    automations = run_stream_automations(entity)
    records = run_stream(entity, runs=12, steps=40)
    expected = expected_run_job_ids(automations, records)
    kinds = {a.id for a in automations}
    assert len(expected) > len(kinds), "the stream fires every automation more than once"
    bad = [
        (b"acme/p/bad", b'{"event_type": "RUN_METRIC", "metrics": {"loss": NaN}}'),
        (b"acme/mnist/run-1", run_metric_bytes(1, {"loss": "low"})),
    ]
    asyncio.run(apply_automations(hs_settings, automations))
    worker = start_worker()
    bootstrap = hs_settings.kafka_bootstrap_servers
    asyncio.run(produce(bootstrap, hs_settings.run_events_topic, [*records, *bad]))

    jobs = consume(hs_settings, hs_settings.webhook_topic, expect=len(expected), timeout=90)
    got = {value["job_id"] for _, value in jobs}
    assert got == expected, worker.log_tail()
    assert {value["automation_id"] for _, value in jobs} == kinds
    assert {value["event_type"] for _, value in jobs} == {
        "RUN_METRIC", "RUN_METRIC_CHANGE", "RUN_METRIC_ZSCORE", "RUN_STATE",
    }  # fmt: skip
    letters = consume(hs_settings, hs_settings.dlq_topic, expect=2, timeout=30)
    reasons = sorted(DeadLetter.model_validate(v).error_code for _, v in letters)
    assert reasons == ["invalid_field", "not_json"]
    assert all(DeadLetter.model_validate(v).source_topic == hs_settings.run_events_topic
               for _, v in letters)  # fmt: skip
