"""Prometheus metrics of the event worker; every name carries its unit. The registry is injected."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.telemetry import LATENCY_BUCKETS

if TYPE_CHECKING:
    from app.core.pipeline import ProcessResult

__all__ = ["WorkerMetrics"]


class WorkerMetrics:
    """Metrics of the event worker.

    Labels stay bounded by default: matches and jobs are counted by action type.
    `per_automation=True` (Settings.metrics_per_automation) adds `automation_id`, one series
    per automation; per-automation counts are otherwise in the history API.
    """

    def __init__(self, registry: CollectorRegistry, *, per_automation: bool = False) -> None:
        self.registry = registry
        self.per_automation = per_automation
        by_automation = ["action_type", "automation_id"] if per_automation else ["action_type"]
        self.events_consumed = Counter(
            "hookstream_events_consumed_total",
            "Events read from the event topics.",
            ["topic", "event_type"],
            registry=registry,
        )
        self.events_invalid = Counter(
            "hookstream_events_invalid_total",
            "Messages that failed validation, by reason code.",
            ["topic", "reason"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "hookstream_dead_letters_total",
            "Records written to the events dead-letter topic.",
            ["topic"],
            registry=registry,
        )
        self.alias_pointers_dropped = Counter(
            "hookstream_alias_pointers_dropped_total",
            "Alias pointers dropped by the per-collection cap (max_aliases_per_collection) "
            "or the state record's size limit, by the topic of the event that dropped them.",
            ["topic"],
            registry=registry,
        )
        self.repeated_deliveries_dropped = Counter(
            "hookstream_repeated_deliveries_dropped_total",
            "Webhook deliveries dropped by the event path as a repeat of one written "
            "earlier (no jobs, no history), by event topic.",
            ["topic"],
            registry=registry,
        )
        self.automations_loaded = Gauge(
            "hookstream_automations_loaded",
            "Automations in this worker's rule book.",
            registry=registry,
        )
        self.matches = Counter(
            "hookstream_matches_total",
            "Event and automation pairs that matched.",
            by_automation,
            registry=registry,
        )
        self.jobs_emitted = Counter(
            "hookstream_jobs_emitted_total",
            "Action jobs sent to action topics.",
            by_automation,
            registry=registry,
        )
        self.event_to_job_seconds = Histogram(
            "hookstream_event_to_job_seconds",
            "Seconds from the event's occurred_at to its job being sent.",
            ["action_type"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.processing_seconds = Histogram(
            "hookstream_processing_seconds",
            "Seconds from an event being consumed to its jobs being sent.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # Label children reused by observe_batch (labels() is a locked dict lookup).
        self._matches: dict[tuple[str, ...], Any] = {}
        self._jobs: dict[tuple[str, ...], Any] = {}
        self._latency: dict[tuple[str, ...], Any] = {}
        self.consumer_lag = Gauge(
            "hookstream_consumer_lag_messages",
            "Messages behind the end of each consumed partition.",
            ["topic", "partition"],
            registry=registry,
        )

    def observe(self, result: ProcessResult, topic: str, started: float) -> None:
        """Record one processed message (`started` from time.perf_counter)."""
        self.observe_batch((result,), topic, started, time.perf_counter())

    def observe_batch(
        self, results: Iterable[ProcessResult], topic: str, started: float, sent: float
    ) -> None:
        """Record a batch consumed at `started` whose records were queued at `sent`."""
        # Counters are summed over the batch and label children cached: labels() and
        # inc() each take a lock, too dear to pay several times per event.
        consumed: dict[str, int] = {}
        invalid: dict[str, int] = {}
        # Keyed by the counters' label values: (action_type,) or (action_type, automation_id).
        matched: dict[tuple[str, ...], int] = {}
        emitted: dict[tuple[str, ...], int] = {}
        now: datetime | None = None
        latency = self._latency
        per_automation = self.per_automation
        for result in results:
            event = result.event
            if event is None:
                code = result.error_code or "invalid"
                invalid[code] = invalid.get(code, 0) + 1
                continue
            kind = event.event_type.value
            consumed[kind] = consumed.get(kind, 0) + 1
            for compiled in result.matched:
                key = (
                    (compiled.action_type, compiled.id)
                    if per_automation
                    else (compiled.action_type,)
                )
                matched[key] = matched.get(key, 0) + 1
            if not result.outbounds:
                continue
            if now is None:
                now = datetime.now(UTC)
            self.processing_seconds.observe(sent - started)
            lag = max((now - event.occurred_at).total_seconds(), 0.0)
            for out in result.outbounds:
                key = (out.action_type, out.automation_id) if per_automation else (out.action_type,)
                emitted[key] = emitted.get(key, 0) + 1
                _child(latency, self.event_to_job_seconds, out.action_type).observe(lag)
        for kind, count in consumed.items():
            self.events_consumed.labels(topic, kind).inc(count)
        for code, count in invalid.items():
            self.events_invalid.labels(topic, code).inc(count)
            self.dead_letters.labels(topic).inc(count)
        for labels, count in matched.items():
            _child(self._matches, self.matches, *labels).inc(count)
        for labels, count in emitted.items():
            _child(self._jobs, self.jobs_emitted, *labels).inc(count)


def _child(cache: dict[tuple[str, ...], Any], metric: Any, *labels: str) -> Any:
    """The metric's child for these labels, looked up once and cached."""
    child = cache.get(labels)
    if child is None:
        child = cache[labels] = metric.labels(*labels)
    return child
