"""Prometheus metrics of the action dispatchers; every name carries its unit."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.telemetry import LATENCY_BUCKETS

__all__ = ["DispatchMetrics"]


class DispatchMetrics:
    """Metrics of the action dispatchers."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter(
            "hookstream_deliveries_total",
            "Final delivery outcomes of action jobs.",
            ["action_type", "outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "hookstream_delivery_attempts_total",
            "Delivery attempts, by outcome of the attempt.",
            ["action_type", "outcome"],
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "hookstream_delivery_seconds",
            "Seconds one delivery attempt took.",
            ["action_type"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.action_dead_letters = Counter(
            "hookstream_action_dead_letters_total",
            "Jobs written to the actions dead-letter topic after exhausting retries.",
            ["action_type"],
            registry=registry,
        )
        self.duplicates_skipped = Counter(
            "hookstream_duplicate_jobs_skipped_total",
            "Redelivered jobs not sent again because they already succeeded.",
            ["action_type"],
            registry=registry,
        )
        self.retries_scheduled = Counter(
            "hookstream_retries_scheduled_total",
            "Failed attempts sent to a retry-tier topic, by tier.",
            ["action_type", "tier"],
            registry=registry,
        )
        self.jobs_in_flight = Gauge(
            "hookstream_dispatch_jobs_in_flight",
            "Jobs taken up by this dispatcher and not yet finished.",
            ["action_type"],
            registry=registry,
        )
        self.endpoints_gone_skipped = Counter(
            "hookstream_endpoint_gone_jobs_total",
            "Jobs failed without a request because their automation's endpoint answered 410.",
            ["action_type"],
            registry=registry,
        )

    def prime(self, action_type: str) -> None:
        """Create the label children up front, so alerts see a 0 before the first event."""
        for outcome in ("finished", "failed"):
            self.deliveries.labels(action_type, outcome)
        self.action_dead_letters.labels(action_type)
        self.duplicates_skipped.labels(action_type)
