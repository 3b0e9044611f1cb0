"""WorkerMetrics.observe_batch counts, and the labels it uses: bounded unless per automation."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, ProcessResult, SourceInfo
from app.settings import Settings
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
    assert _value(registry, "hookstream_matches_total", action_type="webhook") == 2
    assert _value(registry, "hookstream_jobs_emitted_total", action_type="webhook") == 2
    assert _value(registry, "hookstream_dead_letters_total", topic="registry-events") == 1
    invalid = {"topic": "registry-events", "reason": "not_json"}
    assert _value(registry, "hookstream_events_invalid_total", **invalid) == 1
    assert _value(registry, "hookstream_processing_seconds_count") == 2
    assert _value(registry, "hookstream_processing_seconds_sum") == 1.0
    assert _value(registry, "hookstream_event_to_job_seconds_count", action_type="webhook") == 2


AUTOMATIONS = 1_000
COUNTERS = ("hookstream_matches_total", "hookstream_jobs_emitted_total")


def _observed(per_automation: bool) -> CollectorRegistry:
    """A registry after two events that each match all of AUTOMATIONS webhook automations."""
    automations = [make_automation(id=f"a-{n:04d}", name=f"a {n}") for n in range(AUTOMATIONS)]
    pipeline = Pipeline(AutomationIndex(automations), TOPICS, 1 << 20)
    aliases = MemoryAliasStore()
    source = SourceInfo("registry-events")
    results: list[ProcessResult] = [
        pipeline.process(event_bytes(event_id=f"e{n}"), aliases=aliases, source=source)
        for n in range(2)
    ]
    assert all(len(r.outbounds) == AUTOMATIONS for r in results)
    registry = CollectorRegistry()
    WorkerMetrics(registry, per_automation=per_automation).observe_batch(
        results, "registry-events", 1.0, 1.5
    )
    return registry


def _series(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    """The label sets of a counter's `_total` samples."""
    return [
        sample.labels
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    ]


@pytest.mark.parametrize("name", COUNTERS)
def test_by_default_a_thousand_automations_make_one_series_per_action_type(name: str) -> None:
    """Default labels are bounded: 1,000 matched automations give one series, no automation_id."""
    registry = _observed(per_automation=False)
    assert _series(registry, name) == [{"action_type": "webhook"}]
    assert _value(registry, name, action_type="webhook") == 2 * AUTOMATIONS


@pytest.mark.parametrize("name", COUNTERS)
def test_per_automation_makes_one_series_per_automation(name: str) -> None:
    """With per_automation on, each of the 1,000 automations has its own series, counting 2."""
    registry = _observed(per_automation=True)
    series = _series(registry, name)
    assert len(series) == AUTOMATIONS
    assert {s["automation_id"] for s in series} == {f"a-{n:04d}" for n in range(AUTOMATIONS)}
    assert _value(registry, name, action_type="webhook", automation_id="a-0042") == 2


def test_setting_defaults_off_and_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings.metrics_per_automation is False unless HOOKSTREAM_METRICS_PER_AUTOMATION says so."""
    monkeypatch.delenv("HOOKSTREAM_METRICS_PER_AUTOMATION", raising=False)
    assert Settings().metrics_per_automation is False
    monkeypatch.setenv("HOOKSTREAM_METRICS_PER_AUTOMATION", "true")
    assert Settings().metrics_per_automation is True
