"""WorkerMetrics.observe_batch: the same counts as observing each message on its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.stream.metrics import WorkerMetrics
from tests.factories import event_bytes, make_automation

TOPICS = {"webhook": "w", "notification": "n", "queue_job": "q"}


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample of `name` with `labels` (0 when absent)."""
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_batch_counts_events_matches_jobs_and_dead_letters() -> None:
    """Two matching events and one bad message, observed as one batch."""
    pipeline = Pipeline(AutomationIndex([make_automation()]), TOPICS, 1 << 20)
    source = SourceInfo("registry-events")
    aliases = MemoryAliasStore()
    raws = [event_bytes(event_id="e1"), event_bytes(event_id="e2"), b"{oops"]
    results = [pipeline.process(raw, aliases=aliases, source=source) for raw in raws]
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    metrics.observe_batch(results, "registry-events", 1.0, 1.5)

    labels = {"topic": "registry-events", "event_type": "ADD_ARTIFACT_ALIAS"}
    assert _value(registry, "hookstream_events_consumed_total", **labels) == 2
    automation = {"action_type": "webhook", "automation_id": "deploy-on-production"}
    assert _value(registry, "hookstream_matches_total", **automation) == 2
    assert _value(registry, "hookstream_jobs_emitted_total", **automation) == 2
    assert _value(registry, "hookstream_dead_letters_total", topic="registry-events") == 1
    invalid = {"topic": "registry-events", "reason": "not_json"}
    assert _value(registry, "hookstream_events_invalid_total", **invalid) == 1
    assert _value(registry, "hookstream_processing_seconds_count") == 2
    assert _value(registry, "hookstream_processing_seconds_sum") == 1.0
    assert _value(registry, "hookstream_event_to_job_seconds_count", action_type="webhook") == 2
