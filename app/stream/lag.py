"""Consumer lag per assigned event-topic partition, as a gauge refreshed by a timer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
from faust.types import TP

__all__ = ["LAG_INTERVAL_SECONDS", "LagGauge", "define_lag_timer"]

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 5.0


class LagGauge:
    """The `consumer_lag` gauge and the partitions it has a series for (its own state)."""

    def __init__(self, gauge: Any) -> None:
        self.gauge = gauge
        self.labels: set[tuple[str, str]] = set()

    def update(self, lags: Mapping[TP, int]) -> None:
        """Set lag = end offset - committed offset (as kafka-consumer-groups reports it)."""
        current = {(tp.topic, str(tp.partition)) for tp in lags}
        # Revoked partitions lose their series, or a stale value would keep lag alerts firing.
        for labels in self.labels - current:
            self.gauge.remove(*labels)
        self.labels = current
        for tp, lag in lags.items():
            self.gauge.labels(tp.topic, str(tp.partition)).set(lag)


def define_lag_timer(
    app: faust.App, lag: Callable[[], Awaitable[Mapping[TP, int]]], gauge: LagGauge
) -> None:
    """Refresh the lag gauge every few seconds from `lag()` (per-partition lag now)."""

    async def refresh_consumer_lag() -> None:
        try:
            gauge.update(await lag())
        except Exception as exc:  # lag is best-effort telemetry; it must not stop the worker
            log.warning("consumer lag update failed: %r", exc)

    app.timer(LAG_INTERVAL_SECONDS)(refresh_consumer_lag)
