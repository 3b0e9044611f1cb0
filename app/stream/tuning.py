"""Faust tuned through its public settings only (docs/benchmarks.md measures each one).

``faust_settings`` turns Hookstream's Settings into the keyword arguments of
``faust.App``. ``LeanMonitor`` is the App's ``Monitor`` setting: Faust's default
Monitor books every message, stream event, table access and send (counters, deques,
clock reads, dict lookups), which Hookstream's own Prometheus metrics (app.stream.metrics)
already cover; the lean one keeps only the rare hooks (commits, rebalances,
assignments, web requests).
"""

from __future__ import annotations

import gc
from typing import Any

from faust.sensors import Monitor

from app.settings import Settings

__all__ = ["LeanMonitor", "faust_settings", "tune_gc"]


class LeanMonitor(Monitor):
    """Faust's Monitor without its per-message, per-event and per-send bookkeeping."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """Nothing per message (Hookstream counts events itself)."""

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        """Nothing per event; no state for on_stream_event_out."""

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        """Nothing per event."""

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """Nothing per acknowledged message."""

    def on_table_get(self, table: Any, key: Any) -> None:
        """Nothing per table read."""

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        """Nothing per table write."""

    def on_table_del(self, table: Any, key: Any) -> None:
        """Nothing per table delete."""

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> None:
        """Nothing per send; no state for on_send_completed."""

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        """Nothing per send."""


def faust_settings(settings: Settings) -> dict[str, Any]:
    """The tuning keyword arguments of the worker's ``faust.App``."""
    tuning: dict[str, Any] = {
        # The repaired Cython fast paths of this faust-streaming (stream iterator and
        # conductor); opt-in upstream, measured here.
        "cython_optimizations": settings.faust_cython,
        "producer_linger_ms": settings.producer_linger_ms,
        "producer_compression_type": settings.producer_compression,
        "producer_max_batch_size": settings.producer_max_batch_bytes,
        "producer_max_request_size": settings.max_record_bytes,
        "broker_commit_every": settings.broker_commit_every,
        "broker_commit_interval": settings.broker_commit_interval_seconds,
        "stream_buffer_maxsize": settings.stream_buffer_maxsize,
    }
    if settings.faust_lean_monitor:
        tuning["Monitor"] = LeanMonitor
    return tuning


def tune_gc(settings: Settings) -> tuple[int, int, int]:
    """Space the garbage collector's pauses out; returns the thresholds now in force.

    Nearly everything the event path allocates is freed by reference counting; the
    collector only looks for cycles, and at Python's 700 allocations it paused the
    event loop hundreds of times a second. The older generations are collected once per
    50 and 1,000 younger collections, so a full walk of the heap stays rare.
    """
    if settings.gc_young_threshold > 0:
        gc.set_threshold(settings.gc_young_threshold, 50, 1000)
    threshold: tuple[int, int, int] = gc.get_threshold()
    return threshold
